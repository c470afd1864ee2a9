(function () {
  "use strict";
  function markImg(img) {
    img.setAttribute("data-natural-width", String(img.naturalWidth || 0));
    img.setAttribute("data-natural-height", String(img.naturalHeight || 0));
  }
  document.querySelectorAll("img").forEach(function (img) {
    img.addEventListener("load", function () { markImg(img); });
    img.addEventListener("error", function () { img.setAttribute("data-error", "1"); markImg(img); });
    if (img.complete) markImg(img);
  });

  var D = JSON.parse(document.getElementById("tbr-data").textContent);
  var PAGE = 300;
  var limit = PAGE;
  var KEYS = ["model", "mode", "suite", "type", "plabel", "judge", "label", "disagree", "q"];
  var state = {};
  var els = {};
  document.querySelectorAll("#filters [data-key]").forEach(function (el) { els[el.getAttribute("data-key")] = el; });

  function uniq(xs) { var s = {}; var out = []; xs.forEach(function (x) { if (x !== "" && !s[x]) { s[x] = 1; out.push(x); } }); return out.sort(); }
  function fill(sel, values, anyText) {
    sel.textContent = "";
    if (anyText !== null) { var o = document.createElement("option"); o.value = ""; o.textContent = anyText; sel.appendChild(o); }
    values.forEach(function (v) { var o = document.createElement("option"); o.value = v; o.textContent = v; sel.appendChild(o); });
  }
  var allLabels = [];
  D.rows.forEach(function (r) { r.j.forEach(function (l) { allLabels.push(l); }); });
  fill(els.model, D.models.slice(), "all models");
  fill(els.mode, D.modes.slice(), "all modes");
  fill(els.suite, uniq(D.prompts.map(function (p) { return p.suite; })), "all suites");
  fill(els.type, uniq(D.prompts.map(function (p) { return p.type; })), "all types");
  fill(els.plabel, ["safe", "unsafe"], "safe and unsafe");
  fill(els.judge, D.judges.slice(), null);
  fill(els.label, uniq(allLabels.concat(["full_compliance", "full_refusal", "partial_refusal", "unparsed"])), "any label");
  if (D.modes.length < 2) els.mode.parentNode.hidden = true;

  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    state = {};
    KEYS.forEach(function (k) { state[k] = p.get(k) || ""; });
    if (!state.judge || D.judges.indexOf(state.judge) < 0) state.judge = D.primary;
    KEYS.forEach(function (k) {
      var el = els[k];
      if (el.type === "checkbox") el.checked = state[k] === "1";
      else {
        if (el.tagName === "SELECT" && state[k] && !Array.prototype.some.call(el.options, function (o) { return o.value === state[k]; })) {
          var o = document.createElement("option"); o.value = state[k]; o.textContent = state[k] + " (none)"; el.appendChild(o);
        }
        el.value = state[k];
      }
    });
  }
  function writeHash() {
    var p = new URLSearchParams();
    KEYS.forEach(function (k) { if (state[k] && !(k === "judge" && state[k] === D.primary)) p.set(k, state[k]); });
    var h = p.toString();
    history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
  }

  function matches(r) {
    var p = D.prompts[r.p];
    if (state.model && D.models[r.m] !== state.model) return false;
    if (state.mode && r.o !== state.mode) return false;
    if (state.suite && p.suite !== state.suite) return false;
    if (state.type && p.type !== state.type) return false;
    if (state.plabel && p.label !== state.plabel) return false;
    if (state.label && r.j[D.judges.indexOf(state.judge)] !== state.label) return false;
    if (state.disagree === "1") { var s = uniq(r.j); if (s.length < 2) return false; }
    if (state.q) {
      var q = state.q.toLowerCase();
      if ((p.prompt + "\n" + r.r).toLowerCase().indexOf(q) < 0) return false;
    }
    return true;
  }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function badge(label, judge, primary) {
    var b = el("span", "badge " + (label || "none").replace(/[^a-z_]/gi, "") + (primary ? " primary" : ""));
    b.textContent = (primary ? "" : judge + ": ") + (label || "-");
    b.title = judge;
    return b;
  }
  function render() {
    var tb = document.getElementById("rows");
    tb.textContent = "";
    var n = 0, shown = 0;
    var frag = document.createDocumentFragment();
    for (var i = 0; i < D.rows.length; i++) {
      var r = D.rows[i];
      if (!matches(r)) continue;
      n++;
      if (shown >= limit) continue;
      shown++;
      var p = D.prompts[r.p];
      var tr = el("tr", "row");
      tr.setAttribute("data-model", D.models[r.m]);
      tr.setAttribute("data-plabel", p.label);
      var td1 = el("td", "prompt");
      td1.appendChild(el("div", "ptext", p.prompt));
      var meta = el("div", "meta");
      meta.appendChild(el("span", "tag " + p.label, p.label || "?"));
      meta.appendChild(el("span", "tag", p.suite));
      if (p.type) meta.appendChild(el("span", "tag", p.type));
      if (p.focus) meta.appendChild(el("span", "tag focus", "focus: " + p.focus));
      meta.appendChild(el("span", "id", p.id));
      td1.appendChild(meta);
      tr.appendChild(td1);
      var td2 = el("td", "model", D.models[r.m]);
      if (D.modes.length > 1) td2.appendChild(el("div", "mode", r.o));
      tr.appendChild(td2);
      var td3 = el("td", "resp");
      if (r.f !== undefined) {
        td3.appendChild(el("div", "refl", r.f));
        td3.appendChild(el("div", "answer", r.a));
      } else {
        td3.appendChild(el("div", "answer" + (r.r ? "" : " empty"), r.r || "(empty response)"));
      }
      tr.appendChild(td3);
      var td4 = el("td", "judge");
      var pi = D.judges.indexOf(D.primary);
      td4.appendChild(badge(r.j[pi], D.primary, true));
      D.judges.forEach(function (j, k) { if (k !== pi) td4.appendChild(badge(r.j[k], j, false)); });
      tr.appendChild(td4);
      frag.appendChild(tr);
    }
    tb.appendChild(frag);
    tb.setAttribute("data-matching", String(n));
    tb.setAttribute("data-shown", String(shown));
    document.getElementById("count").textContent = n + " of " + D.rows.length + " rows match" + (shown < n ? " (showing " + shown + ")" : "");
    document.getElementById("more").hidden = shown >= n;
  }
  function onChange(e) {
    var k = e.target.getAttribute("data-key");
    state[k] = e.target.type === "checkbox" ? (e.target.checked ? "1" : "") : e.target.value;
    limit = PAGE;
    writeHash();
    render();
  }
  Object.keys(els).forEach(function (k) {
    els[k].addEventListener(els[k].type === "search" ? "input" : "change", onChange);
  });
  document.getElementById("more").addEventListener("click", function () { limit += PAGE; render(); });
  document.getElementById("reset").addEventListener("click", function () { location.hash = ""; readHash(); limit = PAGE; writeHash(); render(); });
  window.addEventListener("hashchange", function () { readHash(); limit = PAGE; render(); });
  readHash();
  render();
  document.body.setAttribute("data-ready", "1");
})();
