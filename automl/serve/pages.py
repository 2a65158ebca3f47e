"""The service's pages: server-rendered HTML, no build step, no network (works offline).

Each page renders what it shows at once, then refreshes itself from the JSON API every two
seconds while something runs. Every value from a study, a job or a log is escaped (or set as
text by the script); the token is typed by the user, kept in the tab's sessionStorage and sent
as `Authorization: Bearer`, never written into a page.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from automl.serve.optuna_ui import installed as optuna_dashboard_installed
from automl.storage.records import StudyRecord, TrialState

# Optuna's own dashboard is linked where optuna-dashboard is installed (see optuna_ui).
OPTUNA_LINK = (
    "<a href='/optuna/dashboard'>Optuna dashboard</a> · " if optuna_dashboard_installed() else ""
)

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f4f4}a{color:#0645ad}.muted{color:#777}pre{background:#f7f7f7;
padding:.8em;max-height:30em;overflow:auto;white-space:pre-wrap}input,select{margin:0 .5em .3em 0}
form{margin:.6em 0;padding:.6em;border:1px solid #ddd}#msg{color:#a00}
"""

SCRIPT = """
const token = () => sessionStorage.getItem('automl-token') || '';
function saveToken(){sessionStorage.setItem('automl-token',
  document.getElementById('token').value.trim()); say('token kept for this tab');}
function say(t){const m=document.getElementById('msg'); if(m) m.textContent=t;}
async function call(method, url, body){
  const headers={'Content-Type':'application/json'};
  if(token()) headers['Authorization']='Bearer '+token();
  const r=await fetch(url,{method,headers,body:body?JSON.stringify(body):undefined});
  const data=await r.json().catch(()=>({}));
  if(!r.ok){say((data.detail && (data.detail.message||JSON.stringify(data.detail)))||r.statusText);
    throw new Error(r.status);}
  return data;}
function cell(row, text){const td=document.createElement('td'); td.textContent=text;
  row.appendChild(td); return td;}
function fmt(v){return v===null||v===undefined?'-':(typeof v==='number'?
  (Number.isInteger(v)?String(v):v.toFixed(4)):String(v));}
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
        "<p><a href='/'>Studies</a> · <a href='/docs'>API</a> · "
        f"{OPTUNA_LINK}"
        "<label>token <input id=token type=password size=24 autocomplete=off></label>"
        "<button onclick='saveToken()'>keep</button> <span id=msg></span></p>"
        f"{body}<script>{SCRIPT}{script}</script></body></html>"
    )


def studies_page(studies: list[dict[str, Any]], spaces: list[str]) -> str:
    """Every study, live; and the form that starts a search."""
    options = "".join(f"<option>{escape(s)}</option>" for s in spaces)
    body = f"""
<h1>Studies</h1>
<table id=studies><thead><tr><th>study</th><th>complete</th><th>pruned</th><th>failed</th>
<th>running</th><th>best</th><th>last update</th></tr></thead><tbody></tbody></table>
<p class=muted id=none>{"" if studies else "No studies yet: start a search below."}</p>
<h2>Start a search</h2>
<form id=start onsubmit="start(event)">
<label>space <select name=space>{options}</select></label>
<label>trials <input name=trials type=number min=1 value=20 size=5></label>
<label>epochs <input name=epochs type=number min=1 size=5 placeholder=space></label>
<label>workers <input name=workers type=number min=1 size=4 placeholder=auto></label>
<label>data <input name=data size=12 placeholder=digits></label>
<label>study <input name=study size=14 placeholder="space name"></label>
<button>Start</button></form>
<p class=muted>Space files are those in the server's --spaces folder
({len(spaces)} found). A search resumes its study if it exists.</p>
"""
    script = f"""
function draw(list){{
  const body=document.querySelector('#studies tbody'); body.replaceChildren();
  for(const s of list){{
    const row=document.createElement('tr'); const a=document.createElement('a');
    a.href='/studies/'+encodeURIComponent(s.name); a.textContent=s.name;
    row.appendChild(document.createElement('td')).appendChild(a);
    for(const k of ['complete','pruned','failed','running']) cell(row, fmt(s.counts[k]||0));
    cell(row, fmt(s.best_value)); cell(row, s.last_update||'-');
    if(s.running) row.style.background='#f3fbf3';
    body.appendChild(row);}}
  document.getElementById('none').textContent=list.length?'':'No studies yet.';}}
draw({json.dumps(studies)});
setInterval(async()=>draw(await (await fetch('/api/studies')).json()), 2000);
async function start(e){{
  e.preventDefault(); const f=new FormData(e.target); const body={{space:f.get('space'),
    trials:Number(f.get('trials'))}};
  for(const k of ['epochs','workers']) if(f.get(k)) body[k]=Number(f.get(k));
  for(const k of ['data','study']) if(f.get(k)) body[k]=f.get(k);
  const job=await call('POST','/api/jobs',body); location.href='/jobs/'+job.id;}}
"""
    return _page("automl: studies", body, script)


def study_page(record: StudyRecord, jobs: list[dict[str, object]]) -> str:
    """A study: live progress, the leaderboard, the report, retrain and export."""
    name = record.name
    counts = record.counts()
    best = record.best()
    best_text = (
        f"trial {best.number}: {escape(record.metric)} {best.value:.4f}"
        if best is not None and best.value is not None
        else "no complete trial yet"
    )
    job_rows = "".join(
        f"<li><a href='/jobs/{j['id']}'>job {j['id']}</a> {escape(str(j['kind']))}: "
        f"{escape(str(j['state']))}</li>"
        for j in jobs
    )
    body = f"""
<h1>Study {escape(name)}</h1>
<p id=progress>{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned,
{counts[TrialState.FAILED]} failed, {counts[TrialState.RUNNING]} running</p>
<p>Best: <b id=best>{best_text}</b> · <a href='/api/studies/{escape(name)}/report'
target=_blank>full report</a></p>
<h2>Running</h2><table id=running><thead><tr><th>trial</th><th>worker</th><th>epochs</th>
<th>{escape(record.metric)}</th></tr></thead><tbody></tbody></table>
<h2>Leaderboard</h2>
<table id=board><thead><tr><th>rank</th><th>trial</th><th>state</th>
<th>{escape(record.metric)}</th><th>best epoch</th><th>epochs</th><th>parameters</th></tr>
</thead><tbody></tbody></table>
<h2>Winner</h2>
<button onclick="retrain()">Retrain the winner</button>
<form onsubmit="exportModel(event)" style="display:inline">
<input name=name size=16 value="{escape(name)}"> <button>Export (Keras)</button></form>
<h2>Jobs</h2><ul id=jobs>{job_rows or "<li class=muted>none</li>"}</ul>
"""
    script = f"""
const study={json.dumps(name)};
async function refresh(){{
  const s=await (await fetch('/api/studies/'+encodeURIComponent(study))).json();
  const c=s.counts; document.getElementById('progress').textContent=
    `${{c.complete||0}} complete, ${{c.pruned||0}} pruned, ${{c.failed||0}} failed, `+
    `${{c.running||0}} running`;
  if(s.best) document.getElementById('best').textContent=
    `trial ${{s.best.number}}: ${{s.metric}} ${{fmt(s.best.value)}}`;
  const run=document.querySelector('#running tbody'); run.replaceChildren();
  for(const t of s.running){{const r=document.createElement('tr'); cell(r,t.number);
    cell(r,t.slot||'-'); const e=Object.keys(t.intermediate); cell(r,e.length);
    cell(r,fmt(e.length?t.intermediate[e[e.length-1]]:null)); run.appendChild(r);}}
  const trials=await (await fetch('/api/studies/'+encodeURIComponent(study)+'/trials')).json();
  const board=document.querySelector('#board tbody'); board.replaceChildren();
  trials.slice(0,50).forEach((t,i)=>{{const r=document.createElement('tr'); cell(r,i+1);
    cell(r,t.number); cell(r,t.state); cell(r,fmt(t.value)); cell(r,fmt(t.best_epoch));
    cell(r,fmt(t.epochs_run)); cell(r,Object.entries(t.params).map(([k,v])=>k+'='+v)
    .join(', ')); board.appendChild(r);}});
  const jobs=document.getElementById('jobs'); if(s.jobs.length) jobs.replaceChildren();
  for(const j of s.jobs){{const li=document.createElement('li');
    const a=document.createElement('a'); a.href='/jobs/'+j.id; a.textContent='job '+j.id;
    li.appendChild(a);
    li.append(' '+j.kind+': '+j.state); jobs.appendChild(li);}}}}
refresh(); setInterval(refresh, 2000);
async function retrain(){{const j=await call('POST','/api/studies/'+encodeURIComponent(study)+
  '/retrain'); location.href='/jobs/'+j.id;}}
async function exportModel(e){{e.preventDefault(); const n=new FormData(e.target).get('name');
  const j=await call('POST','/api/studies/'+encodeURIComponent(study)+'/export',{{name:n}});
  location.href='/jobs/'+j.id;}}
"""
    return _page(f"automl: {name}", body, script)


def job_page(job: dict[str, object], log: str) -> str:
    """A job: its state, its log (live), stop; and, for an export, a predict form."""
    number = job["id"]
    body = f"""
<h1>Job {number}: {escape(str(job["kind"]))} of
<a href='/studies/{escape(str(job["study"]))}'>{escape(str(job["study"]))}</a></h1>
<p>State: <b id=state>{escape(str(job["state"]))}</b>
<button id=stop onclick="stop()">Stop (as Ctrl-C: running trials are re-queued)</button></p>
<p class=muted>automl {escape(str(job["command"]).split(" ", 1)[-1])}</p>
<pre id=log>{escape(log)}</pre>
<h2>Predict</h2><form onsubmit="predict(event)"><input name=model size=16
placeholder="export name"> <input type=file name=files multiple accept="image/*">
<button>Predict</button></form><pre id=predictions></pre>
"""
    script = f"""
const job={number};
async function refresh(){{
  const j=await (await fetch('/api/jobs/'+job)).json();
  document.getElementById('state').textContent=j.state;
  document.getElementById('stop').disabled=!['running','stopping'].includes(j.state);
  const log=document.getElementById('log');
  log.textContent=await (await fetch('/api/jobs/'+job+'/log')).text();
  log.scrollTop=log.scrollHeight; if(j.state!=='running'&&j.state!=='stopping')
  clearInterval(timer);}}
const timer=setInterval(refresh, 2000);
async function stop(){{await call('POST','/api/jobs/'+job+'/stop'); refresh();}}
async function predict(e){{e.preventDefault(); const f=new FormData(e.target);
  const form=new FormData(); for(const file of e.target.files.files) form.append('files',file);
  const headers={{}}; if(token()) headers['Authorization']='Bearer '+token();
  const r=await fetch('/models/'+encodeURIComponent(f.get('model'))+'/predict',
    {{method:'POST',headers,body:form}});
  document.getElementById('predictions').textContent=JSON.stringify(await r.json(),null,1);}}
"""
    return _page(f"automl: job {number}", body, script)
