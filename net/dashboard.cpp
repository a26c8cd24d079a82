#include "net/dashboard.hpp"

namespace pulse::net {

const std::string& dashboard_html() {
  static const std::string page = R"HTML(<!doctype html>
<html><head><meta charset="utf-8"><title>Pulse</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}
tr:hover{background:#f4f4f4;cursor:pointer}#chart{border:1px solid #ccc;margin-top:1em}
</style></head><body>
<h1>Pulse</h1>
<p><a href="/metrics">/metrics</a> · <a href="/api/v1/devices">/api/v1/devices</a> ·
<a href="/readyz">/readyz</a></p>
<p>Reader token (only when the node has auth.tokens-file): <input id="token" size="32" type="password">
<span id="msg"></span></p>
<h2>Devices</h2>
<table id="devices"><thead><tr><th>device</th><th>last_seq</th><th>last seen</th><th>online</th><th>metrics</th></tr></thead><tbody></tbody></table>
<h2 id="title">Select a device</h2>
<canvas id="chart" width="900" height="260"></canvas>
<script>
const tok=document.getElementById('token');tok.value=localStorage.getItem('pulseToken')||'';
tok.onchange=()=>{localStorage.setItem('pulseToken',tok.value);devices();};
async function get(u){
  const t=tok.value,r=await fetch(u,t?{headers:{Authorization:'Bearer '+t}}:{});
  document.getElementById('msg').textContent=r.status==401?'this node needs a reader token':'';
  return r.json();
}
async function devices(){
  const j=await get('/api/v1/devices?limit=200');if(!j.devices)return;
  const tb=document.querySelector('#devices tbody');tb.innerHTML='';
  for(const d of j.devices){
    const tr=document.createElement('tr');
    tr.innerHTML=`<td>${d.id}</td><td>${d.last_seq}</td><td>${new Date(d.last_seen).toISOString()}</td><td>${d.online}</td><td>${d.metrics.join(', ')}</td>`;
    tr.onclick=()=>chart(d.id,d.metrics[0]);tb.appendChild(tr);
  }
}
async function chart(id,metric){
  const to=Date.now()+60000,from=to-3600000;
  const u=`/api/v1/devices/${encodeURIComponent(id)}/aggregate?metric=${encodeURIComponent(metric)}&from=${from}&to=${to}&step=1m&fn=avg`;
  const j=await get(u);
  document.getElementById('title').textContent=`${id} · ${metric} · avg per minute, last hour`;
  const c=document.getElementById('chart'),g=c.getContext('2d');g.clearRect(0,0,c.width,c.height);
  const b=j.buckets||[];if(!b.length)return;
  const ys=b.map(x=>x.avg),lo=Math.min(...ys),hi=Math.max(...ys),span=(hi-lo)||1;
  g.beginPath();b.forEach((x,i)=>{const px=(x.t-from)/(to-from)*c.width,py=c.height-10-(x.avg-lo)/span*(c.height-20);i?g.lineTo(px,py):g.moveTo(px,py)});
  g.stroke();g.fillText(hi.toPrecision(6),4,12);g.fillText(lo.toPrecision(6),4,c.height-2);
}
devices();setInterval(devices,5000);
</script></body></html>
)HTML";
  return page;
}

}  // namespace pulse::net
