/* Charts of the admin's usage pages. The numbers come from the page's json_script element
   (#usage-chart-data); Chart.js is our vendored copy, loaded before this file. */
(function () {
  "use strict";

  var PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  ];

  function color(i) {
    return PALETTE[i % PALETTE.length];
  }

  function axis(title, stacked) {
    return { stacked: stacked, beginAtZero: true, title: { display: true, text: title } };
  }

  // A chart on the canvas with this id, if the page has one.
  function draw(id, type, labels, datasets, options) {
    var canvas = document.getElementById(id);
    if (canvas) {
      options.maintainAspectRatio = false;
      new Chart(canvas, { type: type, data: { labels: labels, datasets: datasets }, options: options });
    }
  }

  function tenantCharts(data) {
    var perModel = data.models.map(function (model, i) {
      return { label: model.label, data: model.tokens, backgroundColor: color(i) };
    });
    draw("usage-tokens-chart", "bar", data.days, perModel, {
      interaction: { mode: "index", intersect: false },
      scales: { x: { stacked: true }, y: axis("tokens", true) },
    });
    var cost = { label: "cost", data: data.cost, borderColor: color(0), backgroundColor: color(0) };
    draw("usage-cost-chart", "line", data.days, [cost], { scales: { y: axis("cost", false) } });
  }

  function tenantsChart(data) {
    var tokens = { label: "tokens", data: data.tokens, backgroundColor: color(0) };
    draw("usage-tenants-chart", "bar", data.labels, [tokens], {
      indexAxis: "y",
      scales: { x: axis("tokens", false) },
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("usage-chart-data");
    if (!node || typeof Chart === "undefined") {
      return;
    }
    var data = JSON.parse(node.textContent);
    if (data.kind === "tenant") {
      tenantCharts(data);
    } else if (data.kind === "tenants") {
      tenantsChart(data);
    }
  });
})();
