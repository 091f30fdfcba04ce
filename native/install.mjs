// npm "postinstall": builds the ping helper (native/ping-helper.c) with the
// system C compiler, so that guests can ping the outside (see
// src/services/ping/helper-build.ts). It never fails the install: without a
// compiler, ping to the outside is off until one is installed (the gateway
// then builds the helper at the next guest ping), and the gateway and
// `vmnet doctor` say so. In a source checkout before `npm run build` there is
// nothing to run yet: the helper is built at the first ping instead.
let build;
try {
  ({ buildHelper: build } = await import('../dist/services/ping/helper-build.js'));
} catch {
  process.exit(0);
}
try {
  const r = await build();
  console.log('error' in r ? `vmnet: ping to the outside is off: ${r.error}` : `vmnet: ping helper built: ${r.path}`);
} catch (e) {
  console.log(`vmnet: ping to the outside is off: ${e instanceof Error ? e.message : String(e)}`);
}
