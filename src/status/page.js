// Refreshes the cells marked data-field from the status API once a second, without
// reloading the page. Values are written with textContent: never parsed as HTML.
(function () {
  "use strict";
  var api = document.body.dataset.api;
  function duration(ms) {
    var s = Math.floor(ms / 1000), m = Math.floor(s / 60), h = Math.floor(s / 3600),
      d = Math.floor(s / 86400), two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    if (h === 0) return m + "m " + two(s % 60) + "s";
    if (d === 0) return h + "h " + two(m % 60) + "m";
    return d + "d " + two(h % 24) + "h";
  }
  function bytes(n) {
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"], i = 0, v = n / 1024;
    if (n < 1024) return n + " B";
    while (v >= 1024 && i + 1 < units.length) { v /= 1024; i++; }
    return v.toFixed(1) + " " + units[i];
  }
  // RFC 3339 in the server's own offset: its local time, as the page shows it.
  function time(t) { return t ? t.slice(0, 19).replace("T", " ") : "-"; }
  var formats = {
    time: time, started_at: time,
    // The API gives the line the log prints (and the page shows) with the exit's fields.
    last_exit: function (e) { return e ? e.message : "-"; },
    uptime_ms: function (v) { return v == null ? "-" : duration(v); },
    duration_ms: duration, bytes_in: bytes, bytes_out: bytes, bytes_sent: bytes,
    bitrate_bps: function (v) { return Math.round(v / 1000) + " kbit/s"; },
    pid: function (v) { return v == null ? "-" : String(v); }
  };
  function update(view) {
    document.querySelectorAll("[data-list]").forEach(function (row) {
      var list = row.dataset.list, name = row.dataset.name, item = list === "server" ?
        view.server : (view[list] || []).find(function (x) { return String(x.name ?? x.id) === name; });
      row.classList.toggle("gone", !item);
      if (!item) return;
      row.querySelectorAll("[data-field]").forEach(function (cell) {
        var field = cell.dataset.field, value = item[field];
        if (field === "state") {
          cell.className = "state " + value;
          value = item.retry_in_ms == null ? value : value + " (retry in " + duration(item.retry_in_ms) + ")";
        } else if (formats[field]) {
          value = formats[field](value);
        }
        cell.textContent = String(value);
      });
    });
  }
  function refresh() {
    fetch(api, { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (view) { if (view) update(view); }).catch(function () {})
      .finally(function () { setTimeout(refresh, 1000); });
  }
  setTimeout(refresh, 1000);
})();
