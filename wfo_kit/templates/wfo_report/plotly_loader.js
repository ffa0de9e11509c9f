/* wfo_kit report: plotly.js arrives compressed, and is inflated here, in the page, offline.
 *
 * The script element with id wfo-plotlyjs holds plotly.js in one of two forms (see
 * wfo_kit/publish.py, plotly_resources):
 * - type text/x-wfo-gzip-base64: the partial bundle (the trace types the report draws), gzipped
 *   and written as base64. The browser decodes and inflates it natively (Uint8Array.fromBase64 or
 *   atob, DecompressionStream), while the page is still being parsed: a few milliseconds.
 * - type text/x-wfo-lzma7: the full plotly.js compressed with LZMA (raw LZMA1, lc/lp/pb in its
 *   data-lzma attribute) and written 7 bits per character (publish.pack7): 1.3 MB instead of
 *   4.8 MB, where gzip as base64 would be 1.96 MB. The decoder below is a port of the LZMA SDK's
 *   reference decoder (LzmaSpec.cpp, public domain).
 * Neither needs eval, a blob: or data: URL or a fetch: the code runs as an inline script, which
 * the CSP `wfo serve` sends with a report allows.
 *
 * Until plotly.js runs, window.Plotly is a stand-in: each call a chart's script makes
 * (Plotly.newPlot, and addFrames / animate for animated figures) waits for the real library and
 * then runs. The queued charts are drawn once the page is parsed (DOMContentLoaded), so the text
 * and tables show first and then every chart is drawn in one go (drawing each chart as the parser
 * reaches it lays the page out again between charts: slower in Chromium). window.wfoPlotly is the
 * promise of the real library; it rejects, and the page says so, if inflating fails.
 */
(function () {
  "use strict";

  var FORBIDDEN = [0, 13, 60]; // NUL, CR and "<" never appear in the packed text

  function unpack7(text, size) {
    var out = new Uint8Array(size);
    var acc = 0;
    var bits = 0;
    var o = 0;
    function push(group) {
      acc = (acc << 7) | group;
      bits += 7;
      if (bits >= 8) {
        bits -= 8;
        if (o < size) out[o++] = (acc >>> bits) & 255;
        acc &= (1 << bits) - 1;
      }
    }
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c < 128) {
        push(c);
      } else {
        push(FORBIDDEN[(c - 128) >> 7]);
        push(c & 127);
      }
    }
    if (o !== size) throw new Error("packed plotly.js is " + o + " bytes, expected " + size);
    return out;
  }

  function probs(n) {
    var p = new Uint16Array(n);
    p.fill(1024);
    return p;
  }

  function lzmaDecode(src, outSize, lc, lp, pb) {
    var out = new Uint8Array(outSize);
    var pos = 0;
    var inPos = 5;
    var range = 0xffffffff;
    var code = 0;
    if (src[0] !== 0) throw new Error("not an LZMA stream");
    for (var i = 1; i < 5; i++) code = code * 256 + src[i];

    function bit(p, i) {
      var v = p[i];
      var bound = (range >>> 11) * v;
      var b;
      if (code < bound) {
        range = bound;
        p[i] = v + ((2048 - v) >> 5);
        b = 0;
      } else {
        range -= bound;
        code -= bound;
        p[i] = v - (v >> 5);
        b = 1;
      }
      if (range < 16777216) {
        range *= 256;
        code = code * 256 + src[inPos++];
      }
      return b;
    }
    function direct(n) {
      var res = 0;
      do {
        range = range >>> 1;
        var b = 0;
        if (code >= range) {
          code -= range;
          b = 1;
        }
        res = res * 2 + b;
        if (range < 16777216) {
          range *= 256;
          code = code * 256 + src[inPos++];
        }
      } while (--n);
      return res;
    }
    function tree(p, base, n) {
      var m = 1;
      for (var i = 0; i < n; i++) m = (m << 1) + bit(p, base + m);
      return m - (1 << n);
    }
    function reverse(p, base, n) {
      var m = 1;
      var sym = 0;
      for (var i = 0; i < n; i++) {
        var b = bit(p, base + m);
        m = (m << 1) + b;
        sym |= b << i;
      }
      return sym;
    }
    function lenCoder() {
      return { choice: probs(2), low: probs(16 << 3), mid: probs(16 << 3), high: probs(256) };
    }
    function length(L, posState) {
      if (bit(L.choice, 0) === 0) return tree(L.low, posState << 3, 3);
      if (bit(L.choice, 1) === 0) return 8 + tree(L.mid, posState << 3, 3);
      return 16 + tree(L.high, 0, 8);
    }

    var isMatch = probs(12 << 4);
    var isRep = probs(12);
    var isRepG0 = probs(12);
    var isRepG1 = probs(12);
    var isRepG2 = probs(12);
    var isRep0Long = probs(12 << 4);
    var literal = probs(0x300 << (lc + lp));
    var posSlot = probs(4 << 6);
    var posSpecial = probs(1 + 114);
    var align = probs(16);
    var lenDec = lenCoder();
    var repLenDec = lenCoder();
    var pbMask = (1 << pb) - 1;
    var lpMask = (1 << lp) - 1;
    var state = 0;
    var rep0 = 0;
    var rep1 = 0;
    var rep2 = 0;
    var rep3 = 0;

    while (pos < outSize) {
      var posState = pos & pbMask;
      if (bit(isMatch, (state << 4) + posState) === 0) {
        var prev = pos > 0 ? out[pos - 1] : 0;
        var base = 0x300 * (((pos & lpMask) << lc) + (prev >> (8 - lc)));
        var symbol = 1;
        if (state >= 7) {
          var matchByte = out[pos - rep0 - 1];
          do {
            var matchBit = (matchByte >> 7) & 1;
            matchByte <<= 1;
            var b = bit(literal, base + ((1 + matchBit) << 8) + symbol);
            symbol = (symbol << 1) | b;
            if (matchBit !== b) break;
          } while (symbol < 0x100);
        }
        while (symbol < 0x100) symbol = (symbol << 1) | bit(literal, base + symbol);
        out[pos++] = symbol - 0x100;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      var len;
      if (bit(isRep, state) !== 0) {
        if (pos === 0) throw new Error("corrupt LZMA stream");
        if (bit(isRepG0, state) === 0) {
          if (bit(isRep0Long, (state << 4) + posState) === 0) {
            state = state < 7 ? 9 : 11;
            out[pos] = out[pos - rep0 - 1];
            pos++;
            continue;
          }
        } else {
          var dist;
          if (bit(isRepG1, state) === 0) {
            dist = rep1;
          } else {
            if (bit(isRepG2, state) === 0) {
              dist = rep2;
            } else {
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        len = length(repLenDec, posState);
        state = state < 7 ? 8 : 11;
      } else {
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        len = length(lenDec, posState);
        state = state < 7 ? 7 : 10;
        var slot = tree(posSlot, (len < 3 ? len : 3) << 6, 6);
        if (slot < 4) {
          rep0 = slot;
        } else {
          var nd = (slot >>> 1) - 1;
          var d = (2 | (slot & 1)) * Math.pow(2, nd);
          if (slot < 14) d += reverse(posSpecial, d - slot, nd);
          else d += direct(nd - 4) * 16 + reverse(align, 0, 4);
          rep0 = d;
        }
        if (rep0 === 0xffffffff) break; // end marker
        if (rep0 >= pos) throw new Error("corrupt LZMA stream");
      }
      len += 2;
      var from = pos - rep0 - 1;
      var end = Math.min(pos + len, outSize);
      while (pos < end) out[pos++] = out[from++];
    }
    if (pos !== outSize) throw new Error("plotly.js inflated to " + pos + " bytes, expected " + outSize);
    return out;
  }

  function inflateLzma(el) {
    var lzma = el.getAttribute("data-lzma").split(",").map(Number);
    var packed = unpack7(el.textContent, Number(el.getAttribute("data-packed-size")));
    var js = lzmaDecode(packed, Number(el.getAttribute("data-size")), lzma[0], lzma[1], lzma[2]);
    performance.mark("wfo-plotly-inflated");
    return new TextDecoder().decode(js);
  }

  function base64Bytes(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function inflateGzip(el) {
    var size = Number(el.getAttribute("data-size"));
    var gz = new Blob([base64Bytes(el.textContent)]);
    var stream = gz.stream().pipeThrough(new DecompressionStream("gzip"));
    var inflated = new Response(stream).arrayBuffer().catch(function (err) {
      throw new Error("plotly.js could not be inflated (" + err.message + ")");
    });
    return inflated.then(function (buf) {
      if (buf.byteLength !== size) {
        throw new Error("plotly.js inflated to " + buf.byteLength + " bytes, expected " + size);
      }
      performance.mark("wfo-plotly-inflated");
      return new TextDecoder().decode(buf);
    });
  }

  function evaluate(js) {
    var script = document.createElement("script");
    script.textContent = js;
    document.head.appendChild(script); // runs now; plotly.js sets window.Plotly
    performance.mark("wfo-plotly-loaded");
    if (!window.Plotly || window.Plotly === standIn) throw new Error("plotly.js did not load");
    return window.Plotly;
  }

  var standIn = new Proxy(
    {},
    {
      get: function (_, name) {
        if (name === "then") return undefined; // not a thenable
        return function () {
          var args = arguments;
          return window.wfoPlotly.then(function (P) {
            return P[name].apply(P, args);
          });
        };
      },
    }
  );
  window.Plotly = standIn;
  // performance marks: wfo-plotly-start, -inflated (decoded and decompressed), -loaded (ran)
  performance.mark("wfo-plotly-start");
  var el = document.getElementById("wfo-plotlyjs");
  // gzip: inflated while the page parses and run as soon as it is, between two of the parser's
  // chunks (the main thread idles there); the stand-in stays window.Plotly until the page is
  // parsed, so the charts still wait and are all drawn in one go. LZMA decoding blocks for a few
  // hundred ms, so it waits for the parse.
  var early = null;
  if (el.type === "text/x-wfo-gzip-base64") {
    early = inflateGzip(el).then(function (js) {
      var real = evaluate(js);
      window.Plotly = standIn;
      return real;
    });
    early.catch(function () {}); // reported once the page is parsed
  }
  window.wfoPlotly = new Promise(function (resolve, reject) {
    function fail(err) {
      document.documentElement.setAttribute("data-wfo-plotly", "failed");
      var note = document.createElement("p");
      note.className = "wfo-banner wfo-failed";
      note.textContent = "The charts could not be drawn: " + err.message;
      document.body.insertBefore(note, document.body.firstChild);
      reject(err);
    }
    function run() {
      var ready = early || new Promise(function (ok) { ok(evaluate(inflateLzma(el))); });
      ready.then(function (real) {
        window.Plotly = real;
        return real;
      }).then(resolve, fail);
    }
    // The page's text first, then the charts.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  });
})();
