// dcmjs-dimse (npm) as a peer of the interop tests: a Storage SCU and a Storage SCP.
//
//   node dcmjs_peer.js scu CONFIG.json   C-ECHO (if "echo"), then C-STORE each of "files";
//                                        one JSON line per answer, then {"done": true}
//   node dcmjs_peer.js scp CONFIG.json   listens on 127.0.0.1, port 0; prints {"port": N};
//                                        for each C-STORE writes OUT/<n>.bin (the data set's
//                                        bytes as they arrived) and OUT/<n>.json (transfer
//                                        syntax, AE titles, the SCU's implementation);
//                                        answers Success; stops when stdin closes
//
// CONFIG: {"host", "port", "calling", "called", "files", "echo", "out",
//          "tls": {"cert", "key", "ca", "minVersion", "maxVersion"}} (PEM file paths).
// The module is found through NODE_PATH (scripts/test installs it into .peers/).
'use strict';

const fs = require('fs');
const path = require('path');
const { Writable } = require('stream');
const dimse = require('dcmjs-dimse');

const { Client, Server, Scp, Transcoding } = dimse;
// Its log goes to stdout (console.info), which carries our JSON lines.
dimse.log.setLevel(process.env.DCMJS_LOG || 'error');
const { CEchoRequest, CStoreRequest } = dimse.requests;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { Status, PresentationContextResult } = dimse.constants;

const [mode, configPath] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));

function securityOptions(tls, server) {
  if (!tls) return undefined;
  const options = {
    cert: fs.readFileSync(tls.cert),
    key: fs.readFileSync(tls.key),
    ca: fs.readFileSync(tls.ca),
    rejectUnauthorized: true,
  };
  if (server) options.requestCert = true; // mutual authentication (PS3.15 B.1)
  if (tls.minVersion) options.minVersion = tls.minVersion;
  if (tls.maxVersion) options.maxVersion = tls.maxVersion;
  return options;
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

function runScu() {
  const client = new Client();
  if (config.echo) {
    const echo = new CEchoRequest();
    echo.on('response', (r) => say({ op: 'echo', status: r.getStatus() }));
    client.addRequest(echo);
  }
  for (const file of config.files || []) {
    const store = new CStoreRequest(file);
    store.on('response', (r) =>
      say({ op: 'store', file, status: r.getStatus(), comment: r.getErrorComment() || null })
    );
    client.addRequest(store);
  }
  client.on('networkError', (e) => say({ error: String(e) }));
  client.on('associationRejected', (r) => say({ rejected: r }));
  client.on('closed', () => say({ done: true }));
  client.send(config.host, config.port, config.calling, config.called, {
    securityOptions: securityOptions(config.tls, false),
    associationTimeout: 10000,
    pduTimeout: 10000,
  });
}

let received = 0;

class StoreScp extends Scp {
  associationRequested(association) {
    this.association = association;
    for (const c of association.getPresentationContexts()) {
      const context = association.getPresentationContext(c.id);
      // Take the first syntax offered, whatever it is: what the SCU meant to send.
      context.setResult(PresentationContextResult.Accept, context.getTransferSyntaxUids()[0]);
    }
    this.sendAssociationAccept();
  }

  createStoreWritableStream() {
    const chunks = [];
    const sink = new Writable({
      write(chunk, encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    sink.chunks = chunks;
    return sink;
  }

  createDatasetFromStoreWritableStream(writable, context, callback) {
    // Keep the bytes as they came; the test reads them (not dcmjs's re-encoding).
    const n = received++;
    fs.writeFileSync(path.join(config.out, `${n}.bin`), Buffer.concat(writable.chunks));
    fs.writeFileSync(
      path.join(config.out, `${n}.json`),
      JSON.stringify({
        transferSyntax: context.getAcceptedTransferSyntaxUid(),
        abstractSyntax: context.getAbstractSyntaxUid(),
        calling: this.association.getCallingAeTitle(),
        called: this.association.getCalledAeTitle(),
        implementationClassUid: this.association.getImplementationClassUid(),
        implementationVersion: this.association.getImplementationVersion(),
        maxPduLength: this.association.getMaxPduLength(),
      })
    );
    callback(undefined);
  }

  cEchoRequest(request, callback) {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }

  cStoreRequest(request, callback) {
    const response = CStoreResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }

  associationReleaseRequested() {
    this.sendAssociationReleaseResponse();
  }
}

function runScp() {
  const server = new Server(StoreScp);
  server.on('networkError', (e) => process.stderr.write(`networkError: ${e}\n`));
  server.listen({ host: '127.0.0.1', port: 0 }, { securityOptions: securityOptions(config.tls, true) });
  server.server.once('listening', () => say({ port: server.server.address().port }));
  process.stdin.resume();
  process.stdin.on('end', () => {
    server.close();
    process.exit(0);
  });
}

if (mode === 'scu' || mode === 'scp') {
  // Without its codecs dcmjs-dimse drops, unanswered and unreported, a request whose data
  // set it must transcode (Explicit VR LE file on a context accepted as Implicit VR LE).
  Transcoding.initializeAsync().then(mode === 'scu' ? runScu : runScp);
} else {
  process.stderr.write('usage: node dcmjs_peer.js scu|scp CONFIG.json\n');
  process.exit(2);
}
