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

  function tenantCharts(data) {
    var tokens = document.getElementById("usage-tokens-chart");
    if (tokens) {
      new Chart(tokens, {
        type: "bar",
        data: {
          labels: data.days,
          datasets: data.models.map(function (model, i) {
            return { label: model.label, data: model.tokens, backgroundColor: color(i) };
          }),
        },
        options: {
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: { x: { stacked: true }, y: axis("tokens", true) },
        },
      });
    }
    var cost = document.getElementById("usage-cost-chart");
    if (cost) {
      new Chart(cost, {
        type: "line",
        data: {
          labels: data.days,
          datasets: [
            { label: "cost", data: data.cost, borderColor: color(0), backgroundColor: color(0) },
          ],
        },
        options: { maintainAspectRatio: false, scales: { y: axis("cost", false) } },
      });
    }
  }

  function tenantsChart(data) {
    var canvas = document.getElementById("usage-tenants-chart");
    if (!canvas) {
      return;
    }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: "tokens", data: data.tokens, backgroundColor: color(0) }],
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        scales: { x: axis("tokens", false) },
      },
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
