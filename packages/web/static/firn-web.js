/* Firn web monitor: progress bars, confirmations, live counts and charts. No inline scripts
 * anywhere (the pages are served with a strict Content-Security-Policy); data comes from the
 * JSON endpoints under /api or from <script type="application/json"> blocks. */
(function () {
  'use strict';

  var COLORS = {
    IDLE: '#b0b7c3', WAITING: '#8e9aaf', QUEUEING: '#a0c4ff', QUEUED: '#5e9cf0', PROCESSING: '#1f6feb',
    READYTOCOPY: '#9b72cf', COPYING: '#7d4fc4', COPIED: '#5a32a3', OK: '#2da44e', ERROR: '#e5534b',
    EVICTED: '#f0883e', RESET: '#d4a72c', FAILED: '#a40e26', SUSPENDED: '#6e7781'
  };

  function bars(root) {
    var els = root.querySelectorAll('[data-w]');
    for (var i = 0; i < els.length; i++) els[i].style.width = els[i].getAttribute('data-w') + '%';
  }

  document.addEventListener('submit', function (e) {
    var f = e.target;
    var msg = f && f.getAttribute ? f.getAttribute('data-confirm') : null;
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  function get(obj, path) {
    return path.split('.').reduce(function (o, k) { return o === null || o === undefined ? undefined : o[k]; }, obj);
  }
  function fmt(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : (n === undefined || n === null ? '' : String(n));
  }

  var state = { updates: 0, lastError: null, charts: {} };
  window.firnWeb = state;

  function setStatus(text) {
    var el = document.getElementById('live-status');
    if (el) el.textContent = text;
  }

  function applyLive(data) {
    var els = document.querySelectorAll('[data-live]');
    for (var i = 0; i < els.length; i++) {
      var v = get(data, els[i].getAttribute('data-live'));
      if (v !== undefined) els[i].textContent = fmt(v);
    }
    var pcts = document.querySelectorAll('[data-live-pct]');
    for (var j = 0; j < pcts.length; j++) {
      var n = get(data, pcts[j].getAttribute('data-live-pct'));
      var total = data.total_tasks || 0;
      if (typeof n === 'number') pcts[j].textContent = total ? (100 * n / total).toFixed(1) : '0.0';
    }
    var st = document.querySelectorAll('[data-live-status]');
    for (var k = 0; k < st.length; k++) {
      var s = get(data, st[k].getAttribute('data-live-status'));
      var badge = st[k].querySelector('.status');
      if (typeof s === 'string' && badge) {
        badge.textContent = s;
        badge.className = 'status s-' + s.replace(/[^A-Z_]/g, '');
      }
    }
  }

  function poll(url, seconds) {
    var run = function () {
      fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
        .then(function (data) {
          applyLive(data);
          state.updates++;
          state.lastError = null;
          setStatus('live · updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
        })
        .catch(function (e) { state.lastError = String(e); setStatus('live updates paused: ' + e.message); })
        .then(function () { setTimeout(run, seconds * 1000); });
    };
    setTimeout(run, seconds * 1000);
  }

  function label(ms, bucket) {
    var iso = new Date(ms).toISOString();
    return bucket >= 86400000 ? iso.slice(0, 10) : iso.slice(5, 16).replace('T', ' ');
  }

  function chartConfig(kind, s) {
    var labels = s.times.map(function (t) { return label(t, s.bucket_ms); });
    var common = { responsive: true, maintainAspectRatio: false, animation: false, interaction: { mode: 'index', intersect: false } };
    if (kind === 'completion') {
      return {
        type: 'bar',
        data: {
          labels: labels,
          datasets: [
            { type: 'bar', label: 'reached OK', data: s.completed, backgroundColor: COLORS.OK, yAxisID: 'y' },
            { type: 'line', label: 'tasks OK', data: s.states.OK, borderColor: '#1a7f37', pointRadius: 0, yAxisID: 'y1' }
          ]
        },
        options: Object.assign({}, common, { scales: { y: { beginAtZero: true, position: 'left' }, y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } } } })
      };
    }
    if (kind === 'states') {
      var sets = Object.keys(s.states)
        .filter(function (k) { return s.states[k].some(function (v) { return v > 0; }); })
        .map(function (k) { return { label: k, data: s.states[k], borderColor: COLORS[k], backgroundColor: COLORS[k], fill: true, pointRadius: 0 }; });
      return { type: 'line', data: { labels: labels, datasets: sets }, options: Object.assign({}, common, { scales: { y: { stacked: true, beginAtZero: true } } }) };
    }
    return {
      type: 'bar',
      data: {
        labels: labels,
        datasets: [
          { label: 'errors', data: s.errors, backgroundColor: COLORS.ERROR },
          { label: 'evictions', data: s.evictions, backgroundColor: COLORS.EVICTED }
        ]
      },
      options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } })
    };
  }

  function drawSeries(canvases, url) {
    fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' }, cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (s) {
        canvases.forEach(function (c) {
          var kind = c.getAttribute('data-chart');
          var cfg = chartConfig(kind, s);
          var existing = state.charts[c.id];
          if (existing) {
            existing.data = cfg.data;
            existing.update('none');
          } else {
            state.charts[c.id] = new window.Chart(c, cfg);
          }
        });
        state.seriesLoaded = (state.seriesLoaded || 0) + 1;
      })
      .catch(function (e) { state.lastError = String(e); });
  }

  function drawReasons(c) {
    var src = document.getElementById(c.getAttribute('data-json'));
    if (!src) return;
    var groups = JSON.parse(src.textContent || '[]');
    state.charts[c.id] = new window.Chart(c, {
      type: 'bar',
      data: {
        labels: groups.map(function (g) { return g.reason.length > 28 ? g.reason.slice(0, 27) + '…' : g.reason; }),
        datasets: [{ label: 'tasks', data: groups.map(function (g) { return g.count; }), backgroundColor: COLORS.ERROR }]
      },
      options: { indexAxis: 'y', responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } } }
    });
  }

  function charts() {
    if (!window.Chart) return;
    var bySrc = {};
    var canvases = document.querySelectorAll('canvas[data-chart]');
    for (var i = 0; i < canvases.length; i++) {
      var c = canvases[i];
      if (c.getAttribute('data-json')) { drawReasons(c); continue; }
      var src = c.getAttribute('data-src');
      (bySrc[src] = bySrc[src] || []).push(c);
    }
    Object.keys(bySrc).forEach(function (src) {
      drawSeries(bySrc[src], src);
      setInterval(function () { drawSeries(bySrc[src], src); }, 60000);
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    bars(document);
    var url = document.body.getAttribute('data-live-url');
    var seconds = Number(document.body.getAttribute('data-poll')) || 5;
    if (url) poll(url, seconds);
    charts();
  });
})();
