// Builds wfo_kit/templates/wfo_report/plotly-partial.min.js: plotly.js with exactly the trace
// types the valuation report draws, the way plotly.js builds its own partial bundles (its
// esbuild-config.js settings, lib/core plus one lib/<trace> module per trace type), minified.
//
//   cd tools/plotly-bundle && npm ci && node build.mjs
//
// package-lock.json pins every package; any folder builds the same bytes. The plotly.js version
// in package.json must be the one the installed plotly Python package ships
// (plotly.offline.get_plotlyjs_version()); wfo_kit.publish reads the version and the trace types
// back from the banner and uses the full plotly.js for any other version or trace type.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import * as esbuild from 'esbuild';

const require = createRequire(import.meta.url);
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');

// plotly.js' esbuild-plugin-inline-css: a CSS file becomes code that adds it as a style element,
// whose id is the SHA-256 of the file's absolute path, so the bundle would depend on the folder
// it is built in. The same code here, the id from the path inside this folder: any checkout
// builds the same bytes.
const inlineCss = {
  name: 'inline-css',
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, (args) => {
      const id = createHash('sha256').update(relative(import.meta.dirname, args.path)).digest('hex');
      const css = JSON.stringify(readFileSync(args.path, 'utf8'));
      return {
        loader: 'js',
        contents: `(function(){if(!document.getElementById('${id}')){var e=document.createElement('style');e.id='${id}';e.textContent=${css};document.head.appendChild(e);}})();`,
      };
    });
  },
};

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
  plugins: [inlineCss, glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
  alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false' },
  target: 'es2016',
  logLevel: 'warning',
});
