(function(){
  var rendered = 0, failed = [];
  document.querySelectorAll('[data-figure]').forEach(function(div){
    var source = document.getElementById(div.id + '-data');
    if (!source) { return; }
    try {
      var fig = JSON.parse(source.textContent);
      Plotly.newPlot(div, fig.data, fig.layout,
        {displaylogo: false, responsive: true, showLink: false, showEditInChartStudio: false,
         showSendToCloud: false});
      rendered += 1;
    } catch (e) { failed.push(div.id + ': ' + e); }
  });
  window.automlFigures = {rendered: rendered, failed: failed};
  var body = document.querySelector('table.board tbody');
  var filter = document.getElementById('state-filter');
  function count(){
    var shown = 0;
    body.querySelectorAll('tr').forEach(function(tr){ if (tr.style.display !== 'none') shown++; });
    document.getElementById('row-count').textContent = shown + ' trials';
  }
  if (filter) {
    filter.addEventListener('change', function(){
      body.querySelectorAll('tr').forEach(function(tr){
        tr.style.display = (!filter.value || tr.dataset.state === filter.value) ? '' : 'none';
      });
      count();
    });
  }
  document.querySelectorAll('table.board thead th').forEach(function(th, column){
    var ascending = true;
    th.addEventListener('click', function(){
      var numeric = th.dataset.sort === 'num';
      var rows = Array.prototype.slice.call(body.querySelectorAll('tr'));
      rows.sort(function(a, b){
        var x = a.children[column].dataset.value, y = b.children[column].dataset.value;
        if (numeric) {
          x = x === '' ? Infinity : parseFloat(x); y = y === '' ? Infinity : parseFloat(y);
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      ascending = !ascending;
      rows.forEach(function(tr){ body.appendChild(tr); });
    });
  });
})();
