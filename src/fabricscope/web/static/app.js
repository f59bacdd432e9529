/* fabricscope web page: the fabric drawn from /api/v1/topology, a trace lit up hop by hop,
 * what crossed a link or a switch. Plain JavaScript; Cytoscape.js (vendored) draws the graph.
 * Served with Content-Security-Policy default-src 'self': no inline script or style, no
 * network access but this server. Data is only ever inserted as text (never as HTML). */
(function () {
  "use strict";

  var API = "/api/v1";
  var TOKEN_KEY = "fabricscope.token";
  var STEP_MS = 220;

  var state = {
    token: null,
    span: null,        // {first, last} in ms
    at: null,          // ms
    window: 900,       // seconds
    topo: null,
    cy: null,
    trace: null,       // last trace request params
    traceResult: null,
    selectedPath: 0,
    timers: [],
    fitted: false,
    debounce: null
  };

  // ---------------------------------------------------------------- small helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") e.textContent = String(v);
        else if (k === "class") e.className = v;
        else if (k.indexOf("data-") === 0) e.setAttribute(k, String(v));
        else e.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number"
        ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function humanBytes(n) {
    if (n === null || n === undefined) return "-";
    var units = ["B", "kB", "MB", "GB", "TB", "PB"];
    var i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  function humanBits(n) {
    if (n === null || n === undefined) return "-";
    var units = ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"];
    var i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return n.toFixed(i === 0 ? 0 : 1) + " " + units[i];
  }

  function pct(x) { return (x === null || x === undefined) ? "-" : (100 * x).toFixed(1) + "%"; }

  function rate(x) { return (x === null || x === undefined) ? "-" : x.toFixed(2) + "/s"; }

  function parseTime(iso) {
    // tolerate nanosecond fractions: keep milliseconds
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function isoSeconds(ms) { return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"); }

  function status(text, isError) {
    var s = $("status");
    s.textContent = text || "";
    s.className = isError ? "error" : "";
  }

  function tenantColor(name) {
    var palette = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b",
                   "#e377c2", "#bcbd22", "#7f7f7f", "#d62728"];
    if (!name) return "#9aa3b2";
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return palette[h % palette.length];
  }

  function levelColor(level) {
    return { ok: "#2da44e", warning: "#d4a72c", critical: "#cf222e" }[level] || "#a0a7b4";
  }

  // ---------------------------------------------------------------- API access

  function ApiError(status, body) {
    this.status = status;
    this.body = body || {};
    this.message = (body && body.error) || ("HTTP " + status);
  }

  function api(path, params) {
    var qs = [];
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v === null || v === undefined || v === "") return;
      qs.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(v)));
    });
    var url = API + path + (qs.length ? "?" + qs.join("&") : "");
    return fetch(url, {
      headers: { "Authorization": "Bearer " + state.token, "Accept": "application/json" },
      credentials: "omit",
      cache: "no-store"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.status === 401) {
          showLogin("The server did not accept this token.");
          throw new ApiError(401, body);
        }
        if (!r.ok) throw new ApiError(r.status, body);
        return body;
      });
    });
  }

  function windowParams() {
    var until = state.at;
    return { since: isoSeconds(until - state.window * 1000), until: isoSeconds(until) };
  }

  // ---------------------------------------------------------------- login

  function showLogin(message) {
    $("login").classList.remove("hidden");
    $("main").classList.add("hidden");
    $("timebox").classList.add("hidden");
    $("logout").classList.add("hidden");
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function onLogin(ev) {
    ev.preventDefault();
    var tok = $("token").value.trim();
    if (!tok) return;
    state.token = tok;
    try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (e) { /* private mode */ }
    start();
  }

  function onLogout() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    state.token = null;
    if (state.cy) { state.cy.destroy(); state.cy = null; }
    state.fitted = false;
    showLogin("");
  }

  // ---------------------------------------------------------------- start, time slider

  function start() {
    status("loading…");
    api("/store/info").then(function (info) {
      $("login").classList.add("hidden");
      $("main").classList.remove("hidden");
      $("logout").classList.remove("hidden");
      setSpan(info.span);
      return loadTopology();
    }).catch(function (e) {
      if (e.status !== 401) status(e.message, true);
    });
  }

  function setSpan(span) {
    var slider = $("time");
    if (span && span.first && span.last) {
      var first = parseTime(span.first), last = parseTime(span.last);
      state.span = { first: first, last: last };
      var lo = Math.floor(first / 1000), hi = Math.ceil(last / 1000);
      if (hi - lo < 60) lo = hi - 60;
      slider.min = String(lo);
      slider.max = String(hi);
      slider.value = String(hi);
      state.at = hi * 1000;
      $("timebox").classList.remove("hidden");
    } else {
      state.span = null;
      state.at = Date.now();
      $("timebox").classList.add("hidden");
      status("the store holds no records yet");
    }
    showTime();
  }

  function showTime() {
    $("time-label").textContent = state.at ? isoSeconds(state.at).replace("T", " ") : "-";
  }

  function onTime() {
    state.at = Number($("time").value) * 1000;
    showTime();
    refreshSoon();
  }

  function onWindow() {
    state.window = Number($("window").value);
    refreshSoon();
  }

  function onLatest() {
    api("/store/info").then(function (info) {
      setSpan(info.span);
      refreshSoon();
    }).catch(function (e) { if (e.status !== 401) status(e.message, true); });
  }

  function refreshSoon() {
    if (state.debounce) clearTimeout(state.debounce);
    state.debounce = setTimeout(function () {
      loadTopology().then(function () { if (state.trace) runTrace(state.trace); });
    }, 250);
  }

  // ---------------------------------------------------------------- topology

  function loadTopology() {
    status("loading topology…");
    return api("/topology", { at: isoSeconds(state.at), window: state.window })
      .then(function (topo) {
        state.topo = topo;
        draw(topo);
        var links = topo.edges.filter(function (e) { return e.kind === "link"; }).length;
        var tunnels = topo.edges.length - links;
        status(topo.nodes.length + " nodes, " + links + " links, " + tunnels + " tunnels" +
               (topo.inventory ? "" : " (no inventory)"));
      })
      .catch(function (e) { if (e.status !== 401) status(e.message, true); });
  }

  var ROW_Y = { spine: 0, leaf: 170, host: 360 };
  var CHILD_DX = 66, CHILD_DY = 44, HOST_GAP = 28;

  function layoutPositions(topo) {
    var byId = {};
    topo.nodes.forEach(function (n) { byId[n.id] = n; });
    var children = {};
    topo.nodes.forEach(function (n) {
      if (n.parent && byId[n.parent]) (children[n.parent] = children[n.parent] || []).push(n);
    });
    var devices = topo.nodes.filter(function (n) { return n.kind === "device" && !n.parent; });
    var spines = devices.filter(function (d) { return d.role === "spine"; });
    var leaves = devices.filter(function (d) { return d.role !== "spine"; });
    var byName = function (a, b) { return a.label < b.label ? -1 : a.label > b.label ? 1 : 0; };
    spines.sort(byName);
    leaves.sort(byName);
    var leafIndex = {};
    leaves.forEach(function (l, i) { leafIndex[l.id] = i; });
    var hostLeaf = {};
    topo.edges.forEach(function (e) {
      if (e.kind !== "link") return;
      if (byId[e.source] && byId[e.source].kind === "host" && e.target in leafIndex) hostLeaf[e.source] = leafIndex[e.target];
      if (byId[e.target] && byId[e.target].kind === "host" && e.source in leafIndex) hostLeaf[e.target] = leafIndex[e.source];
    });
    var hosts = topo.nodes.filter(function (n) { return n.kind === "host"; });
    hosts.sort(function (a, b) {
      var la = a.id in hostLeaf ? hostLeaf[a.id] : 1e9, lb = b.id in hostLeaf ? hostLeaf[b.id] : 1e9;
      return la !== lb ? la - lb : byName(a, b);
    });
    var pos = {};
    var x = 0;
    hosts.forEach(function (h) {
      var kids = (children[h.id] || []).slice();
      var rank = { device: 0, vnf: 1, endpoint: 2 };
      kids.sort(function (a, b) { return (rank[a.kind] - rank[b.kind]) || byName(a, b); });
      var cols = Math.max(1, Math.min(2, kids.length));
      var width = cols * CHILD_DX;
      kids.forEach(function (k, i) {
        pos[k.id] = { x: x + (i % cols) * CHILD_DX + CHILD_DX / 2,
                      y: ROW_Y.host + 20 + Math.floor(i / cols) * CHILD_DY };
      });
      if (!kids.length) pos[h.id] = { x: x + width / 2, y: ROW_Y.host + 20 };
      h._center = x + width / 2;
      x += width + HOST_GAP;
    });
    var total = Math.max(x - HOST_GAP, 300);
    leaves.forEach(function (l, i) {
      var mine = hosts.filter(function (h) { return hostLeaf[h.id] === i; });
      var cx = mine.length
        ? mine.reduce(function (s, h) { return s + h._center; }, 0) / mine.length
        : (i + 0.5) * total / Math.max(1, leaves.length);
      pos[l.id] = { x: cx, y: ROW_Y.leaf };
    });
    // keep leaves apart
    for (var i = 1; i < leaves.length; i++) {
      var a = pos[leaves[i - 1].id], b = pos[leaves[i].id];
      if (b.x - a.x < 130) b.x = a.x + 130;
    }
    var left = leaves.length ? pos[leaves[0].id].x : 0;
    var right = leaves.length ? pos[leaves[leaves.length - 1].id].x : total;
    spines.forEach(function (s, i) {
      var cx = spines.length === 1 ? (left + right) / 2
        : left + (right - left) * (i + 0.5) / spines.length;
      pos[s.id] = { x: cx, y: ROW_Y.spine };
    });
    return pos;
  }

  function elementsOf(topo, pos) {
    var els = [];
    topo.nodes.forEach(function (n) {
      var d = Object.assign({}, n);
      delete d._center;
      if (!d.parent) delete d.parent;
      d.color = n.kind === "endpoint" || n.kind === "vnf" ? tenantColor(n.tenant) : "#445066";
      d.border = levelColor(n.level);
      d.display = n.kind === "vnf" ? n.label + "\n(" + (n.vnf_kind || "vnf") + ")" : n.label;
      var cls = [n.kind];
      if (n.role) cls.push("role-" + n.role);
      if (n.level) cls.push("level-" + n.level);
      els.push({ group: "nodes", data: d, position: pos[n.id] ? Object.assign({}, pos[n.id]) : undefined,
                 classes: cls.join(" ") });
    });
    var xs = {};
    Object.keys(pos).forEach(function (k) { xs[k] = pos[k].x; });
    topo.edges.forEach(function (e) {
      var d = Object.assign({}, e);
      var cls = [e.kind];
      if (e.kind === "link") {
        d.color = e.level === "critical" ? levelColor("critical")
          : e.level === "warning" ? levelColor("warning")
          : e.level === "ok" ? levelColor("ok") : levelColor("unknown");
        d.width = 2 + 6 * Math.min(1, e.util || 0);
        cls.push("level-" + (e.level || "unknown"));
      } else {
        d.width = 1.5 + 4 * Math.min(1, e.share || 0);
        var sx = hostX(e.source, pos, topo), tx = hostX(e.target, pos, topo);
        var dist = 40 + 0.12 * Math.abs(tx - sx);
        d.cpd = sx <= tx ? dist : -dist;   // arcs below the hosts
      }
      els.push({ group: "edges", data: d, classes: cls.join(" ") });
    });
    return els;
  }

  function hostX(id, pos, topo) {
    if (pos[id]) return pos[id].x;
    var xs = topo.nodes.filter(function (n) { return n.parent === id && pos[n.id]; })
      .map(function (n) { return pos[n.id].x; });
    return xs.length ? xs.reduce(function (a, b) { return a + b; }, 0) / xs.length : 0;
  }

  var STYLE = [
    { selector: "node", style: {
      "label": "data(display)", "font-size": 11, "color": "#1d2330",
      "text-valign": "bottom", "text-margin-y": 3, "background-color": "data(color)",
      "border-width": 2, "border-color": "data(border)", "width": 26, "height": 26 } },
    { selector: "node.device", style: {
      "shape": "round-rectangle", "width": 58, "height": 26, "text-valign": "center",
      "text-margin-y": 0, "color": "#fff", "font-weight": "bold", "border-width": 3 } },
    { selector: "node.role-spine", style: { "background-color": "#0b3d91" } },
    { selector: "node.role-leaf, node.role-border", style: { "background-color": "#1f6feb" } },
    { selector: "node.role-vswitch", style: {
      "background-color": "#6e7781", "width": 62, "height": 20, "font-size": 9 } },
    { selector: "node.host", style: {
      "shape": "round-rectangle", "background-color": "#eef1f6", "background-opacity": 1,
      "border-color": "#b6bfcc", "border-width": 1, "text-valign": "top",
      "text-margin-y": -4, "font-weight": "bold", "padding": 10, "width": 60, "height": 30 } },
    { selector: "node.host:childless", style: { "background-color": "#eef1f6" } },
    { selector: "node.endpoint", style: {
      "shape": "ellipse", "width": 18, "height": 18, "font-size": 9, "border-width": 0,
      "text-wrap": "ellipsis", "text-max-width": 64 } },
    { selector: "node.vnf", style: {
      "shape": "diamond", "width": 24, "height": 24, "font-size": 9, "border-width": 2,
      "border-color": "#bf3989", "color": "#bf3989", "font-weight": "bold",
      "text-wrap": "wrap", "text-max-width": 64 } },
    { selector: "edge", style: {
      "width": "data(width)", "line-color": "data(color)", "curve-style": "straight",
      "opacity": 0.9 } },
    { selector: "edge.tunnel", style: {
      "line-style": "dashed", "line-color": "#8250df", "curve-style": "unbundled-bezier",
      "control-point-distances": "data(cpd)", "control-point-weights": 0.5, "opacity": 0.7,
      "target-arrow-shape": "none" } },
    { selector: ".faded", style: { "opacity": 0.2 } },
    { selector: "node.hl", style: {
      "border-color": "#0969da", "border-width": 5, "opacity": 1, "z-index": 20,
      "overlay-color": "#0969da", "overlay-opacity": 0.12, "overlay-padding": 6 } },
    { selector: "node.hl.device", style: { "background-color": "#0969da" } },
    { selector: "node.hl-inferred", style: { "border-style": "dashed" } },
    { selector: "node.hl-vnf", style: {
      "border-color": "#bf3989", "border-width": 5, "opacity": 1, "z-index": 20,
      "overlay-color": "#bf3989", "overlay-opacity": 0.18, "overlay-padding": 6 } },
    { selector: "edge.hl", style: {
      "line-color": "#0969da", "width": 8, "opacity": 1, "z-index": 20 } },
    { selector: "edge.hl-inferred", style: { "line-style": "dashed" } },
    { selector: "edge.tunnel.hl", style: { "line-color": "#8250df", "width": 5 } },
    /* a lit element keeps its health visible as a halo */
    { selector: "edge.hl.level-critical", style: {
      "underlay-color": "#cf222e", "underlay-padding": 5, "underlay-opacity": 0.55 } },
    { selector: "edge.hl.level-warning", style: {
      "underlay-color": "#d4a72c", "underlay-padding": 5, "underlay-opacity": 0.55 } },
    { selector: "node.hl.level-critical", style: { "overlay-color": "#cf222e", "overlay-opacity": 0.25 } },
    { selector: "node.hl.level-warning", style: { "overlay-color": "#d4a72c", "overlay-opacity": 0.25 } },
    { selector: ":selected", style: { "overlay-color": "#d4a72c", "overlay-opacity": 0.25 } }
  ];

  function draw(topo) {
    var pos = layoutPositions(topo);
    var els = elementsOf(topo, pos);
    if (!state.cy) {
      state.cy = cytoscape({
        container: $("graph"),
        elements: [],
        style: STYLE,
        layout: { name: "preset" },
        minZoom: 0.2,
        maxZoom: 3,
        autoungrabify: false
      });
      state.cy.on("tap", "edge.link", function (ev) { onLink(ev.target.data()); });
      state.cy.on("tap", "edge.tunnel", function (ev) { onTunnel(ev.target.data()); });
      state.cy.on("tap", "node.device", function (ev) { onDevice(ev.target.data()); });
      state.cy.on("tap", "node.host", function (ev) { onHost(ev.target); });
      state.cy.on("tap", "node.endpoint, node.vnf", function (ev) { onEndpoint(ev.target.data()); });
      window.fabricscope = { cy: state.cy, state: state };
    }
    var cy = state.cy;
    cy.batch(function () {
      cy.elements().remove();
      cy.add(els);
    });
    cy.layout({ name: "preset", fit: false }).run();
    if (!state.fitted) { cy.fit(undefined, 30); state.fitted = true; }
    $("graph").dataset.nodes = String(topo.nodes.length);
    $("graph").dataset.highlighted = "";
  }

  // ---------------------------------------------------------------- trace

  function onTrace(ev) {
    ev.preventDefault();
    var p = {
      src: $("trace-src").value.trim(),
      dst: $("trace-dst").value.trim(),
      dport: $("trace-dport").value.trim(),
      proto: $("trace-proto").value,
      vni: $("trace-vni").value.trim(),
      both: $("trace-both").checked ? "true" : ""
    };
    state.trace = p;
    state.selectedPath = 0;
    runTrace(p);
  }

  function onTraceClear() {
    state.trace = null;
    state.traceResult = null;
    stopAnimation();
    unlight();
    clear($("trace-result"));
  }

  function runTrace(p) {
    var out = $("trace-result");
    clear(out);
    out.appendChild(el("p", { class: "muted", text: "tracing…" }));
    $("graph").dataset.traceState = "running";
    var params = Object.assign({}, p, windowParams());
    return api("/trace", params).then(function (r) {
      state.traceResult = r;
      showTrace(r);
      lightPath(r, state.selectedPath);
    }).catch(function (e) {
      clear(out);
      $("graph").dataset.traceState = "error";
      unlight();
      if (e.status === 404) {
        out.appendChild(el("p", { class: "error", text: e.message }));
        out.appendChild(el("p", { class: "hint",
          text: "Move the time slider or widen the window to where the flow was seen." }));
      } else if (e.status !== 401) {
        out.appendChild(el("p", { class: "error", text: e.message }));
      }
    });
  }

  function who(e) {
    var parts = [e.ip];
    if (e.endpoint) parts.push(e.endpoint);
    if (e.tenant) parts.push("tenant " + e.tenant);
    if (e.host) parts.push("on " + e.host);
    return parts.join(" · ");
  }

  function showTrace(r) {
    var out = $("trace-result");
    clear(out);
    out.appendChild(el("h3", { text: "Trace " + r.query.src + " → " + r.query.dst }));
    out.appendChild(el("p", { class: "muted", text: "src: " + who(r.src) }));
    out.appendChild(el("p", { class: "muted", text: "dst: " + who(r.dst) }));
    r.paths.forEach(function (p, k) {
      var box = el("div", { class: "path" + (k === state.selectedPath ? " selected" : ""),
                            "data-path": k });
      var head = el("header", null,
        el("strong", { text: "path " + (k + 1) + " (" + p.direction + ")" }),
        el("span", { text: pct(p.share) + " of samples, ~" + humanBytes(p.est_bytes) }));
      head.addEventListener("click", function () {
        state.selectedPath = k;
        showTrace(r);
        lightPath(r, k);
      });
      box.appendChild(head);
      box.appendChild(el("div", null, "via ",
        el("span", { class: "vnfs", text: p.vnfs.length ? p.vnfs.join(" → ") : "no VNF" }),
        " · " + p.samples + " samples · " + p.first_seen + " … " + p.last_seen));
      p.segments.forEach(function (s, i) {
        var seg = el("div", { class: "segment" });
        seg.appendChild(el("div", { class: "seg-title",
          text: (s.encap || "no tunnel") + (s.vni !== null ? " " + s.vni : "") +
                (s.network ? " (" + s.network + ")" : "") + ": " +
                (s.src_host || "?") + " → " + (s.dst_host || "?") }));
        var ol = el("ol", { class: "hops" });
        s.hops.forEach(function (h, j) {
          var hs = (h.health && h.health.status) || "unknown";
          var li = el("li", { class: "hop" + (h.inferred ? " inferred" : ""),
                              "data-device": h.device, "data-seg": i, "data-hop": j },
            el("strong", { text: h.device || "?" }),
            " " + (h.in_if || "?") + " → " + (h.out_if || "?"),
            h.inferred ? " (inferred)" : " · " + h.samples + " samples",
            el("span", { class: "health " + hs, text: hs }));
          if (h.candidates && h.candidates.length) {
            li.appendChild(el("span", { class: "muted", text: " or " + h.candidates.join(", ") }));
          }
          ol.appendChild(li);
        });
        if (i < p.vnfs.length) {
          ol.appendChild(el("li", { class: "vnf-hop", text: "VNF " + p.vnfs[i] + " on " + (s.dst_host || "?") }));
        }
        seg.appendChild(ol);
        box.appendChild(seg);
      });
      out.appendChild(box);
    });
    (r.notes || []).forEach(function (n) { out.appendChild(el("p", { class: "hint", text: "note: " + n })); });
  }

  function stopAnimation() {
    state.timers.forEach(function (t) { clearTimeout(t); });
    state.timers = [];
  }

  function unlight() {
    if (!state.cy) return;
    state.cy.elements().removeClass("hl hl-inferred hl-vnf faded");
    $("graph").dataset.highlighted = "";
  }

  function linkBetween(a, b) {
    var cy = state.cy;
    var na = cy.getElementById(a), nb = cy.getElementById(b);
    if (!na.length || !nb.length) return cy.collection();
    var cand = [[na, nb]];
    if (na.parent().length) cand.push([na.parent(), nb]);
    if (nb.parent().length) cand.push([na, nb.parent()]);
    for (var i = 0; i < cand.length; i++) {
      var found = cand[i][0].edgesWith(cand[i][1]).filter(".link");
      if (found.length) return found;
    }
    return cy.collection();
  }

  /* the steps of a path, in order: each a list of [element, extra class] */
  function pathSteps(r, p) {
    var cy = state.cy;
    var steps = [];
    var prev = null;
    function node(id, inferred) {
      var n = cy.getElementById(id);
      if (!n.length) return;
      var step = [];
      if (prev) {
        linkBetween(prev, id).forEach(function (e) { step.push([e, inferred ? "hl-inferred" : null]); });
      }
      step.push([n, inferred ? "hl-inferred" : null]);
      steps.push(step);
      prev = id;
    }
    var segs = p.segments;
    // an endpoint is lit only where the path met it (a VM may have moved since)
    function endpointOn(name, host) {
      if (!name || !host) return;
      var n = cy.getElementById("ep:" + name);
      if (n.length && n.parent().id() === "host:" + host) node(n.id(), false);
    }
    if (r.src && segs.length) endpointOn(r.src.endpoint, segs[0].src_host);
    p.segments.forEach(function (s, i) {
      if (s.src_host) node("host:" + s.src_host, false);
      s.hops.forEach(function (h) { if (h.device) node("dev:" + h.device, h.inferred); });
      if (s.dst_host) node("host:" + s.dst_host, false);
      if (s.src_host && s.dst_host) {
        var a = cy.getElementById("host:" + s.src_host), b = cy.getElementById("host:" + s.dst_host);
        if (a.length && b.length) {
          var tun = a.edgesWith(b).filter(".tunnel");
          if (tun.length) steps.push(tun.map(function (t) { return [t, null]; }));
        }
      }
      if (i < p.vnfs.length) {
        var v = cy.getElementById("vnf:" + p.vnfs[i]);
        if (v.length) steps.push([[v, "hl-vnf"]]);
      }
    });
    if (r.dst && segs.length) endpointOn(r.dst.endpoint, segs[segs.length - 1].dst_host);
    return steps;
  }

  function lightPath(r, k) {
    stopAnimation();
    unlight();
    var graph = $("graph");
    var p = r.paths[k];
    if (!p || !state.cy) { graph.dataset.traceState = "done"; return; }
    var cy = state.cy;
    var steps = pathSteps(r, p);
    cy.elements().addClass("faded");
    var lit = [];
    var items = document.querySelectorAll("#trace-result .path.selected li.hop");
    var hopIdx = 0;
    steps.forEach(function (step, i) {
      state.timers.push(setTimeout(function () {
        step.forEach(function (pair) {
          var e = pair[0];
          e.removeClass("faded");
          e.addClass(pair[1] === "hl-vnf" ? "hl-vnf" : "hl");
          if (pair[1] === "hl-inferred") e.addClass("hl-inferred");
          if (e.isNode() && e.parent().length) e.parent().removeClass("faded");
          if (e.isNode() && e.hasClass("device")) {
            if (lit.indexOf(e.data("label")) < 0) lit.push(e.data("label"));
            if (items[hopIdx]) items[hopIdx].classList.add("lit");
            hopIdx++;
          }
        });
        graph.dataset.highlighted = lit.join(",");
        if (i === steps.length - 1) graph.dataset.traceState = "done";
      }, STEP_MS * (i + 1)));
    });
    if (!steps.length) graph.dataset.traceState = "done";
  }

  // ---------------------------------------------------------------- details panels

  function details() {
    var d = $("details");
    clear(d);
    d.scrollIntoView({ block: "nearest" });
    return d;
  }

  function tableOf(cols, rows) {
    var t = el("table", { class: "small" });
    var tr = el("tr");
    cols.forEach(function (c) { tr.appendChild(el("th", { class: c.num ? "num" : null, text: c.title })); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      cols.forEach(function (c) {
        row.appendChild(el("td", { class: c.num ? "num" : null, text: c.get(r) }));
      });
      t.appendChild(row);
    });
    return t;
  }

  function ifaceRow(title, s) {
    return el("p", null, el("strong", { text: title }), " " +
      "util in " + pct(s.in_util) + " / out " + pct(s.out_util) +
      ", peak " + pct(s.peak_util) + ", errors " + rate(s.errors_ps) +
      ", discards " + rate(s.discards_ps));
  }

  function onLink(d) {
    var box = details();
    box.appendChild(el("h3", { text: "Link " + d.link }));
    box.appendChild(el("p", { text: "utilisation " + pct(d.util) + " (peak " + pct(d.peak_util) +
      "), errors " + rate(d.errors_ps) + ", discards " + rate(d.discards_ps) }));
    var src = state.cy.getElementById(d.source).data(), dst = state.cy.getElementById(d.target).data();
    box.appendChild(ifaceRow(src.label + " " + (d.a.name || "?"), d.a));
    box.appendChild(ifaceRow(dst.label + " " + (d.b.name || "?"), d.b));
    var end = src.kind === "device" ? { dev: src.label, itf: d.a.name }
      : dst.kind === "device" ? { dev: dst.label, itf: d.b.name } : null;
    if (end && end.itf) impact(box, end.dev, end.itf);
  }

  function onDevice(d) {
    var box = details();
    box.appendChild(el("h3", { text: "Switch " + d.label + " (" + d.role + ")" }));
    if (d.agent) box.appendChild(el("p", { class: "muted", text: "sFlow agent " + d.agent }));
    var itfs = (d.interfaces || []).filter(function (i) { return i.level !== "unknown"; });
    if (itfs.length) {
      box.appendChild(tableOf([
        { title: "interface", get: function (i) { return i.name || i.ifindex; } },
        { title: "in", num: true, get: function (i) { return humanBits(i.in_bps); } },
        { title: "out", num: true, get: function (i) { return humanBits(i.out_bps); } },
        { title: "util", num: true, get: function (i) { return pct(i.peak_util); } },
        { title: "errors", num: true, get: function (i) { return rate(i.errors_ps); } },
        { title: "state", get: function (i) { return i.level; } }
      ], itfs));
    }
    impact(box, d.label, null);
  }

  function onHost(n) {
    var d = n.data();
    var box = details();
    box.appendChild(el("h3", { text: "Host " + d.label + (d.role ? " (" + d.role + ")" : "") }));
    if (d.tunnel_ips && d.tunnel_ips.length) {
      box.appendChild(el("p", { class: "muted", text: "tunnel endpoints " + d.tunnel_ips.join(", ") }));
    }
    var kids = n.children().map(function (c) { return c.data(); });
    if (kids.length) {
      box.appendChild(tableOf([
        { title: "name", get: function (k) { return k.label; } },
        { title: "kind", get: function (k) { return k.kind === "endpoint" ? k.ep_kind : k.kind === "vnf" ? "VNF " + (k.vnf_kind || "") : k.role; } },
        { title: "tenant", get: function (k) { return k.tenant || "-"; } },
        { title: "addresses", get: function (k) { return (k.ips || []).join(", "); } }
      ], kids));
    }
    var tuns = n.connectedEdges(".tunnel").map(function (e) { return e.data(); });
    if (tuns.length) {
      box.appendChild(el("h3", { text: "Tunnels" }));
      box.appendChild(tableOf([
        { title: "between", get: function (t) { return t.source.slice(5) + " ↔ " + t.target.slice(5); } },
        { title: "tenants", get: function (t) { return t.tenants.join(", "); } },
        { title: "est. bytes", num: true, get: function (t) { return humanBytes(t.est_bytes); } }
      ], tuns));
    }
  }

  function onTunnel(d) {
    var box = details();
    box.appendChild(el("h3", { text: "Tunnel " + d.source.slice(5) + " ↔ " + d.target.slice(5) }));
    box.appendChild(el("p", { text: "tenants: " + (d.tenants.join(", ") || "-") +
      "; ~" + humanBytes(d.est_bytes) + " (" + pct(d.share) + " of tunnelled traffic) in the window" }));
  }

  function onEndpoint(d) {
    var box = details();
    box.appendChild(el("h3", { text: (d.kind === "vnf" ? "VNF " : "Endpoint ") + d.label }));
    var rows = [["tenant", d.tenant], ["host", d.host], ["network", d.network],
                ["kind", d.ep_kind || d.vnf_kind], ["addresses", (d.ips || []).join(", ")],
                ["ports", (d.ports || []).join(", ")]];
    rows.forEach(function (r) { if (r[1]) box.appendChild(el("p", null, el("strong", { text: r[0] + ": " }), r[1])); });
    if (d.ips && d.ips.length) {
      var use = el("button", { type: "button", text: "trace from here" });
      use.addEventListener("click", function () { $("trace-src").value = d.ips[0]; $("trace-dst").focus(); });
      box.appendChild(use);
    }
  }

  function impact(box, device, itf) {
    var wait = el("p", { class: "muted", text: "what crossed it…" });
    box.appendChild(wait);
    var params = Object.assign({ device: device, interface: itf, limit: 10 }, windowParams());
    api("/impact", params).then(function (r) {
      box.removeChild(wait);
      box.appendChild(el("h3", { text: "Crossed " + device + (itf ? " " + itf : "") + ": " + r.samples + " samples" }));
      if (r.link) box.appendChild(el("p", { class: "muted", text: "link " + r.link.link + " to " + r.link.far_end }));
      if (r.health && r.health.status) {
        box.appendChild(el("p", null, "health ", el("span", { class: "health " + r.health.status, text: r.health.status }),
          " " + (r.health.flags || []).join(", ")));
      }
      box.appendChild(tableOf([
        { title: "tenant", get: function (t) { return t.tenant; } },
        { title: "flows", num: true, get: function (t) { return t.flows; } },
        { title: "est. bytes", num: true, get: function (t) { return humanBytes(t.est_bytes); } },
        { title: "share", num: true, get: function (t) { return pct(t.share); } }
      ], r.tenants));
      box.appendChild(tableOf([
        { title: "flow", get: function (f) { return f.src + ":" + (f.sport === null ? "" : f.sport) + " → " + f.dst + ":" + (f.dport === null ? "" : f.dport) + " p" + f.proto; } },
        { title: "tenant", get: function (f) { return f.tenant || "-"; } },
        { title: "est. bytes", num: true, get: function (f) { return humanBytes(f.est_bytes); } },
        { title: "±%", num: true, get: function (f) { return f.error_pct === null ? "-" : f.error_pct; } }
      ], r.flows));
    }).catch(function (e) {
      if (wait.parentNode) box.removeChild(wait);
      if (e.status === 401) return;
      box.appendChild(el("p", { class: e.status === 404 ? "muted" : "error",
        text: e.status === 404 ? "Nothing sampled crossing " + device + (itf ? " " + itf : "") + " in the window." : e.message }));
    });
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("time").addEventListener("input", onTime);
    $("window").addEventListener("change", onWindow);
    $("latest").addEventListener("click", onLatest);
    $("trace-form").addEventListener("submit", onTrace);
    $("trace-clear").addEventListener("click", onTraceClear);
    state.window = Number($("window").value);
    if (typeof cytoscape !== "function") {
      status("the graph library did not load", true);
      return;
    }
    var tok = null;
    try { tok = sessionStorage.getItem(TOKEN_KEY); } catch (e) { tok = null; }
    if (tok) { state.token = tok; start(); } else { showLogin(""); }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
