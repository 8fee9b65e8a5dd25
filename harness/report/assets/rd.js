/* The interactive RD plots of a harness report: each <figure class="rd"> is drawn with
   plotly.js from the JSON block #rd-data (see harness/report/interactive.py). */
(function () {
  "use strict";
  var block = document.getElementById("rd-data");
  var figures = document.querySelectorAll("figure.rd");
  if (!block || !figures.length) { return; }
  var data = JSON.parse(block.textContent);
  if (typeof Plotly === "undefined") {
    Array.prototype.forEach.call(figures, function (fig) {
      fig.querySelector(".rd-plot").textContent =
        "plotly.min.js is missing beside this page: the interactive plot cannot be drawn." +
        " The PNG, SVG and PDF files are linked below.";
    });
    return;
  }
  var CONFIG = {responsive: true, displaylogo: false, showTips: false};
  var CROWDED = 12;  // curves from which a plot takes the page's whole width

  function plain(text) {  // plotly reads tags in names: show them as written instead
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function traces(set, metric, label, hidden) {
    var out = [];
    set.curves.forEach(function (c) {
      if (!c.y[metric]) { return; }
      var name = plain(c.name);
      var off = hidden.hasOwnProperty(name) ? hidden[name] : !c.shown;
      out.push({
        type: "scatter", mode: "lines+markers", name: name, x: c.x, y: c.y[metric],
        customdata: c.q.map(function (q) { return q === null ? "-" : q; }),
        connectgaps: true, visible: off ? "legendonly" : true,
        line: {color: c.color, dash: c.dash, width: c.width},
        marker: {color: c.color, symbol: c.symbol, size: c.width > 2 ? 8 : 6},
        hovertemplate: "<b>%{fullData.name}</b><br>quality %{customdata}<br>" +
          "%{x:.4f} bpp<br>" + label + " %{y:.4f}<extra></extra>"
      });
    });
    return out;
  }

  function layout(name, set, label, log, shown) {
    // a linear axis opens on 0-2 bpp when curves reach further (autoscale shows all)
    var top = 0;
    shown.forEach(function (t) {
      t.x.forEach(function (x) { if (x !== null && x > top) { top = x; } });
    });
    var xaxis = {title: {text: "bpp (" + set.rate + " rate)"}, type: log ? "log" : "linear",
                 zeroline: false};
    if (!log && top > 2) { xaxis.range = [0, 2]; } else { xaxis.autorange = true; }
    return {
      title: {text: name + ": " + label + " vs bpp", font: {size: 14}, x: 0.01,
              xanchor: "left"},
      margin: {l: 58, r: 8, t: 36, b: 46}, hovermode: "closest", xaxis: xaxis,
      yaxis: {title: {text: label}, zeroline: false}, legend: {font: {size: 11}},
      font: {family: "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif"}
    };
  }

  Array.prototype.forEach.call(figures, function (fig) {
    var name = fig.getAttribute("data-dataset");
    var set = data.datasets[name];
    if (!set) { return; }
    var plot = fig.querySelector(".rd-plot");
    if (set.curves.length > CROWDED) { fig.classList.add("wide"); }  // room for the legend
    var select = fig.querySelector(".rd-metric");
    var log = fig.querySelector(".rd-log");
    set.metrics.forEach(function (m) {
      var option = document.createElement("option");
      option.value = m[0];
      option.textContent = m[1];
      select.appendChild(option);
    });
    select.value = fig.getAttribute("data-metric");
    if (!select.value && set.metrics.length) { select.value = set.metrics[0][0]; }
    log.checked = data.log;

    function draw() {
      var hidden = {};  // what the reader hid or showed so far, kept across redraws
      (plot.data || []).forEach(function (t) { hidden[t.name] = t.visible === "legendonly"; });
      var label = select.options[select.selectedIndex].textContent;
      var shown = traces(set, select.value, label, hidden);
      var visible = shown.filter(function (t) { return t.visible === true; });
      return Plotly.react(plot, shown, layout(name, set, label, log.checked, visible), CONFIG);
    }
    select.addEventListener("change", draw);
    log.addEventListener("change", draw);
    draw();
  });
  document.documentElement.setAttribute("data-rd-ready", String(figures.length));
})();
