'use strict';
// Test certificates made with the openssl CLI at test time, so no key
// material is ever committed: a test CA, a server certificate for
// 127.0.0.1/localhost signed by it, and an unrelated second CA (a client
// trusting only that one must refuse the server).
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { makeTempDir } = require('./util');

function openssl(args, cwd) {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
  } catch (e) {
    const err = e.stderr ? e.stderr.toString() : e.message;
    throw new Error(`openssl ${args.join(' ')} failed:\n${err}`);
  }
}

function makeCa(dir, name, cn) {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { key, cert };
}

function makeCerts() {
  const dir = makeTempDir('dsd-certs');
  const ca = makeCa(dir, 'ca', 'dsd test CA');
  const other = makeCa(dir, 'other-ca', 'dsd unrelated CA');
  const serverKey = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const serverCert = path.join(dir, 'server.pem');
  const ext = path.join(dir, 'server.ext');
  fs.writeFileSync(ext, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '',
  ].join('\n'));
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', serverKey, '-out', csr, '-subj', '/CN=localhost'], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-out', serverCert, '-days', '2', '-extfile', ext], dir);
  return {
    dir,
    caFile: ca.cert,
    caKeyFile: ca.key,
    otherCaFile: other.cert,
    otherCaKeyFile: other.key,
    certFile: serverCert,
    keyFile: serverKey,
    // The form startProxy({tls}) wants.
    tls: { key: fs.readFileSync(serverKey), cert: fs.readFileSync(serverCert) },
    ca: fs.readFileSync(ca.cert),
    otherCa: fs.readFileSync(other.cert),
  };
}

/*
 * A client certificate (clientAuth) for name, signed by certs' test CA or,
 * with other: true, by the unrelated one; {certFile, keyFile} in certs.dir.
 */
function makeClientCert(certs, name, { other = false } = {}) {
  const { dir } = certs;
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', other ? certs.otherCaFile : certs.caFile,
    '-CAkey', other ? certs.otherCaKeyFile : certs.caKeyFile, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext], dir);
  return { certFile: cert, keyFile: key };
}

module.exports = { makeCerts, makeClientCert, openssl };
