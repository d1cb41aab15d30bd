// The built CLI (dist/cli/main.js) run without bin/pgbak and its fast paths (the built help texts,
// --version from package.json): what the CLI itself prints. Use: node test/helpers/cli-main.mjs --help
const { main } = await import(new URL('../../dist/cli/main.js', import.meta.url));
process.exit(await main(process.argv));
