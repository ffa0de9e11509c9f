// Builds wfo_kit/templates/wfo_report/plotly-partial.min.js: plotly.js with exactly the trace
// types the valuation report draws, the way plotly.js builds its own partial bundles (its
// esbuild-config.js settings, lib/core plus one lib/<trace> module per trace type), minified.
//
//   cd tools/plotly-bundle && npm ci && node build.mjs
//
// The plotly.js version in package.json must be the one the installed plotly Python package
// ships (plotly.offline.get_plotlyjs_version()); wfo_kit.publish reads the version and the trace
// types back from the banner and uses the full plotly.js for any other version or trace type.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as esbuild from 'esbuild';

const require = createRequire(import.meta.url);
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const TRACES = ['bar', 'box', 'heatmap', 'scatter', 'waterfall'];
const OUT = '../../wfo_kit/templates/wfo_report/plotly-partial.min.js';
const version = JSON.parse(readFileSync('node_modules/plotly.js/package.json', 'utf8')).version;
const entry = [
  "var Plotly = require('plotly.js/lib/core');",
  `Plotly.register([${TRACES.map((t) => `require('plotly.js/lib/${t}')`).join(', ')}]);`,
  'module.exports = Plotly;',
].join('\n');

await esbuild.build({
  stdin: { contents: entry, resolveDir: import.meta.dirname, sourcefile: 'wfo-plotly-entry.js' },
  outfile: OUT,
  banner: { js: `/*! plotly.js v${version} partial traces=${TRACES.join(',')} (wfo_kit tools/plotly-bundle) */` },
  // as plotly.js' esbuild-config.js, minified as its dist/*.min.js
  format: 'iife',
  globalName: 'Plotly',
  bundle: true,
  minify: true,
  sourcemap: false,
  plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
  alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false' },
  target: 'es2016',
  logLevel: 'warning',
});
