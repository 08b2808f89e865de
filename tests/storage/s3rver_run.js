// tests/storage/s3rver_run.js — starts the fake S3 server for the storage
// tests: node s3rver_run.js MODULE_DIR PORT DATA_DIR BUCKET ACCESS_KEY SECRET_KEY [nosig]
// on 127.0.0.1 with signature checking on (allowMismatchedSignatures false;
// "nosig" turns it off: only for virtual-hosted requests, see test_s3.sh),
// one bucket, and one key pair (besides s3rver's built-in S3RVER/S3RVER).
// serviceEndpoint "localhost" makes BUCKET.s3.localhost virtual-hosted.
'use strict';
const [mod, port, dir, bucket, ak, sk, nosig] = process.argv.slice(2);
const S3rver = require(mod);
const AWSAccount = require(mod + '/lib/models/account');
new AWSAccount('123456789012', 'sdserve-test').createKeyPair(ak, sk);
const srv = new S3rver({
  port: Number(port), address: '127.0.0.1', silent: false, directory: dir,
  serviceEndpoint: 'localhost', allowMismatchedSignatures: nosig === 'nosig', configureBuckets: [{ name: bucket }],
});
srv.run().then(a => console.log('s3rver listening on ' + a.address + ':' + a.port))
  .catch(e => { console.error(e); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
