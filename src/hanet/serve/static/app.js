// hanet search page: search box -> /search -> result cards; "Why?" -> /explain -> explanation view.
// Every value from the server is put into the page with textContent (never as HTML).
"use strict";

const SCORE_COLORS = {
  sent: "#2f6fde", verb: "#e07b00", noun: "#16a085", concept_verb: "#c0392b",
  concept_noun: "#8e44ad", ind_verb: "#f1b44c", ind_noun: "#4fc3a1",
};
// what each of the seven scores compares, in plain words (the technical name is in the tooltip)
const SCORE_WORDS = {
  sent: "whole sentence and whole clip", verb: "actions and action clips", noun: "things and object clips",
  concept_verb: "actions the model recognises", concept_noun: "things the model recognises",
  ind_verb: "actions and single frames", ind_noun: "things and single frames",
};
const TILE = 48;          // tile size (px) in the explanation; strips are stored at 96 px per frame
let lastQuery = "";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : `HTTP ${resp.status}`;
    throw new Error(msg);
  }
  return body;
}

function setStatus(text, isError = false, warnings = []) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", isError);
  for (const w of warnings) s.append(el("span", { class: "warning", text: "⚠ " + w }));
}

function scoreBars(scores, weights) {
  const bars = el("div", { class: "bars", title: "how much each kind of match adds to the score" });
  const total = Object.entries(scores).reduce((a, [n, v]) => a + Math.max(0, v * (weights[n] || 0)), 0) || 1;
  for (const [name, v] of Object.entries(scores)) {
    const c = Math.max(0, v * (weights[name] || 0));
    bars.append(el("span", { title: `${SCORE_WORDS[name] || name} (${name}): ${v.toFixed(3)}`, style: {
      width: `${(100 * c) / total}%`, background: SCORE_COLORS[name] || "#999" } }));
  }
  return bars;
}

function renderLegend(names) {
  const box = $("legend");
  box.replaceChildren(el("span", { text: "Bar: what each kind of match adds to the score —" }));
  for (const n of names) {
    box.append(el("span", { title: n }, el("span", { class: "swatch", style: { background: SCORE_COLORS[n] || "#999" } }),
      document.createTextNode(SCORE_WORDS[n] || n)));
  }
  box.hidden = !names.length;
}

function weightsFor(scores) {
  const names = Object.keys(scores);
  if (names.length === 1) return { sent: 1 };
  const w = {};
  for (const n of names) w[n] = n.startsWith("concept") ? 0.25 : 0.1;
  return w;
}

function spanText(m) {
  if (m.start != null && m.end != null) return `${m.start.toFixed(1)}–${m.end.toFixed(1)} s`;
  return `frames ${m.first_frame}–${m.last_frame}`;
}

function momentView(hit) {
  const m = hit.moment;
  if (!m) return el("div", { class: "moment none", text: "no time span (the index stores no per-frame concepts)" });
  const div = el("div", { class: "moment", title: m.note || "" },
    el("span", { text: "matches at " }), el("span", { class: "when", text: spanText(m) }),
    m.note ? el("span", { class: "note", text: ` (${m.note})` }) : null);
  if (hit.phrases.length > 1) {
    div.append(el("div", { class: "phrases", text: hit.phrases.map((p) => `“${p.text}” ${spanText(p)}`).join(" · ") }));
  }
  return div;
}

function stripView(hit) {
  if (!hit.thumbnail_url) return el("div", { class: "strip none", text: "no thumbnail" });
  const strip = el("div", { class: "strip" }, el("img", { src: hit.thumbnail_url, alt: `frames of ${hit.video_id}`, loading: "lazy" }));
  const m = hit.moment;
  if (m && hit.frames) {  // the span over the tiles it covers (tile i = frame i), in shares of the strip
    const span = el("div", { class: "span-mark", title: spanText(m) });
    span.style.left = `${(100 * m.first_frame) / hit.frames}%`;
    span.style.width = `${(100 * (m.last_frame - m.first_frame + 1)) / hit.frames}%`;
    strip.append(span);
  }
  return strip;
}

function captionsView(hit) {
  const caps = hit.captions || [];
  if (!caps.length) return null;
  const box = el("div", {}, el("div", { class: "caption", text: caps[0] }));
  if (caps.length > 1) {
    const more = el("details", { class: "more-captions" }, el("summary", { text: `${caps.length - 1} more caption${caps.length > 2 ? "s" : ""}` }));
    const ul = el("ul");
    for (const c of caps.slice(1)) ul.append(el("li", { text: c }));
    more.append(ul);
    box.append(more);
  }
  return box;
}

function renderResults(res) {
  const box = $("results");
  box.replaceChildren();
  for (const hit of res.hits) {
    const btn = el("button", { class: "secondary explain-btn", type: "button", text: "Why?" });
    btn.addEventListener("click", () => openExplanation(hit.video_id, card, hit.moment));
    const card = el("article", { class: "card", "data-video-id": hit.video_id },
      el("div", { class: "head" },
        el("span", { class: "rank", text: `#${hit.rank}` }),
        el("span", { class: "vid", text: hit.video_id }),
        el("span", { class: "score", title: "HANet's score", text: hit.score.toFixed(3) })),
      captionsView(hit),
      stripView(hit),
      momentView(hit),
      scoreBars(hit.scores, weightsFor(hit.scores)),
      btn);
    box.append(card);
  }
  if (!res.hits.length) box.append(el("p", { text: "No videos in the index." }));
  renderLegend(res.hits.length ? Object.keys(res.hits[0].scores) : []);
}

async function runSearch(q) {
  const k = $("k").value;
  const mode = $("exact").checked ? "exhaustive" : "two-stage";
  lastQuery = q;
  $("q").value = q;
  setStatus("searching…");
  const params = new URLSearchParams({ q, k, mode });
  history.replaceState(null, "", `/?${params}`);
  try {
    const res = await getJSON(`/search?${params}`);
    renderResults(res);
    setStatus(`${res.hits.length} of ${res.total} videos for “${res.normalized}” — ${res.mode}, ` +
      `${res.candidates} scored in ${res.timings_ms.total.toFixed(0)} ms${res.exact ? " (exact)" : ""}`,
      false, res.warnings);
  } catch (err) {
    $("results").replaceChildren();
    setStatus(err.message, true);
  }
}

function frameTile(thumbUrl, i, weight, isTop, time) {
  const t = el("div", { class: "frame" + (isTop ? " top" : ""), title:
    `frame ${i}${time != null ? ` at ${time.toFixed(2)} s` : ""}: attention ${weight.toFixed(3)}` });
  if (thumbUrl) {
    t.style.backgroundImage = `url("${thumbUrl}")`;
    t.style.backgroundSize = "auto 100%";
    t.style.backgroundPosition = `${-i * TILE}px 0`;
  } else {
    t.classList.add("notile");
    t.append(document.createTextNode(String(i)));
  }
  t.style.opacity = String(0.35 + 0.65 * Math.min(1, weight * 2.5));
  t.append(el("span", { class: "w", text: weight.toFixed(2) }));
  return t;
}

function plainReasons(exp, moment) {
  // the explanation in plain words: when, what the model sees, what it shares with the query
  const out = [];
  if (moment) {
    const verbs = exp.phrases.filter((p) => p.kind === "verb" && p.span);
    let line = `The query's action${verbs.length > 1 ? "s are" : " is"} seen at ${spanText(moment)}`;
    if (verbs.length > 1) line += ": " + verbs.map((p) => `“${p.words.join(" ")}” ${spanText(p.span)}`).join(", then ");
    out.push(moment.note ? `${line} (${moment.note}).` : `${line}.`);
  }
  const names = (kind, list, n) => (list[kind] || []).slice(0, n).map((c) => c.concept);
  const shared = [...names("verb", exp.shared_concepts, 3), ...names("noun", exp.shared_concepts, 3)]
    .filter((c, i, a) => a.indexOf(c) === i);
  if (shared.length) out.push(`What it shares with your words: ${shared.join(", ")}.`);
  const sees = names("verb", exp.video_concepts, 4);
  if (sees.length) out.push(`Actions the model recognises in the clip: ${sees.join(", ")}.`);
  const things = names("noun", exp.video_concepts, 4);
  if (things.length) out.push(`Things it recognises: ${things.join(", ")}.`);
  const strongest = [...exp.contributions].sort((a, b) => b.contribution - a.contribution).slice(0, 2)
    .filter((c) => c.contribution > 0).map((c) => SCORE_WORDS[c.name] || c.name);
  if (strongest.length) out.push(`The match rests most on: ${strongest.join(" and ")}.`);
  return out;
}

function renderExplanation(exp, meta, moment) {
  const body = $("explanation-body");
  body.replaceChildren();
  body.append(el("h2", { text: `Why ${exp.video_id} matches` }));
  for (const w of exp.warnings) body.append(el("div", { class: "legend", text: "⚠ " + w }));
  if (meta && meta.preview_url) {
    // start playing at the moment (a media fragment: the browser seeks there itself)
    const frag = moment && moment.start != null ? `#t=${moment.start.toFixed(2)}` : "";
    body.append(el("video", { src: meta.preview_url + frag, controls: true, muted: true, autoplay: true,
      preload: "metadata", class: "preview" }));
  }
  const reasons = el("ul", { class: "reasons" });
  for (const r of plainReasons(exp, moment)) reasons.append(el("li", { text: r }));
  body.append(reasons);

  // the technical view, one click away
  const tech = el("details", { class: "technical" }, el("summary", { text: "Technical details: the seven scores, attention over frames, concepts" }));
  body.append(tech);
  tech.append(el("div", { class: "legend", text:
    `fused score ${exp.score.toFixed(4)} for “${exp.normalized}” · ${exp.num_frames} frames` }));
  if (moment) tech.append(el("div", { class: "legend moment-line", text: `best matching moment: ${spanText(moment)}` +
    (moment.note ? ` (${moment.note})` : "") }));

  tech.append(el("h3", { text: "Contribution of each score" }));
  const table = el("table", { class: "contrib" });
  const maxC = Math.max(1e-9, ...exp.contributions.map((c) => Math.abs(c.contribution)));
  for (const c of exp.contributions) {
    const bar = el("div", { class: "bar" + (c.contribution < 0 ? " neg" : ""), style: {
      width: `${(100 * Math.abs(c.contribution)) / maxC}%`, background: c.contribution < 0 ? "" : SCORE_COLORS[c.name] } });
    table.append(el("tr", { class: "contrib-row", "data-score": c.name, title: SCORE_WORDS[c.name] || "" },
      el("td", { text: c.name }), el("td", { class: "legend", text: c.level }),
      el("td", { class: "num", text: c.score.toFixed(3) }), el("td", { class: "num", text: `× ${c.weight}` }),
      el("td", { class: "num", text: c.contribution.toFixed(4) }), el("td", { style: { width: "30%" } }, bar)));
  }
  tech.append(table);

  tech.append(el("h3", { text: "What each phrase matched" }));
  if (!exp.phrases.length) tech.append(el("div", { class: "legend", text: "The query has no verb or noun phrase." }));
  for (const p of exp.phrases) {
    const div = el("div", { class: "phrase", "data-kind": p.kind },
      el("span", { class: "words", text: p.words.join(" ") || "(phrase)" }),
      el("span", { class: "role", text: `${p.kind} · ${p.role}` }));
    div.append(el("div", { class: "line", text:
      `frames (individual level): similarity ${p.individual_similarity.toFixed(3)}` }));
    const frames = el("div", { class: "frames" });
    for (const f of p.frames) frames.append(frameTile(exp.thumbnail_url, f.frame, f.weight, p.top_frames.includes(f.frame), f.time));
    div.append(frames);
    if (p.clips.length) {
      const best = p.clips[0];
      div.append(el("div", { class: "line", text:
        `clips (local level): similarity ${p.local_similarity.toFixed(3)}; best clip ${best.clip} ` +
        `(concept “${best.concept}”, weight ${best.weight.toFixed(2)}) from frames ${best.frames.join(", ")}` }));
      const clipFrames = el("div", { class: "frames" });
      for (const f of best.frames) {
        clipFrames.append(frameTile(exp.thumbnail_url, f, best.weight, true, exp.frame_times ? exp.frame_times[f] : null));
      }
      div.append(clipFrames);
    }
    tech.append(div);
  }

  tech.append(el("h3", { text: "Concepts" }));
  for (const kind of ["verb", "noun"]) {
    tech.append(el("div", { class: "legend", text: `video's top ${kind} concepts` }));
    const chips = el("div", { class: "chips" });
    for (const c of exp.video_concepts[kind] || []) chips.append(el("span", { class: "chip", text: `${c.concept} ${c.video.toFixed(2)}` }));
    tech.append(chips);
    tech.append(el("div", { class: "legend", text: `${kind} concepts shared with the query` }));
    const shared = el("div", { class: "chips" });
    for (const c of exp.shared_concepts[kind] || []) shared.append(el("span", { class: "chip shared", text:
      `${c.concept} (${c.video.toFixed(2)} / ${c.query.toFixed(2)})` }));
    tech.append(shared);
  }

  tech.append(el("h3", { text: "Query words (attention in the sentence embedding)" }));
  const words = el("div", { class: "words-line" });
  for (const w of exp.words) {
    words.append(el("span", { class: w.known ? "" : "unknown", title: w.known ? `attention ${w.attention.toFixed(3)}` : "not in the vocabulary",
      text: w.word, style: { background: `rgba(47,111,222,${Math.min(0.6, w.attention)})` } }));
  }
  tech.append(words);
}

async function openExplanation(videoId, card, moment) {
  for (const c of document.querySelectorAll(".card.selected")) c.classList.remove("selected");
  if (card) card.classList.add("selected");
  const aside = $("explanation");
  aside.hidden = false;
  $("explanation-body").replaceChildren(el("p", { class: "legend", text: "explaining…" }));
  try {
    const params = new URLSearchParams({ q: lastQuery, video: videoId });
    const [exp, meta] = await Promise.all([
      getJSON(`/explain?${params}`),
      getJSON(`/videos/${encodeURIComponent(videoId)}`).catch(() => null),
    ]);
    renderExplanation(exp, meta, moment);
  } catch (err) {
    $("explanation-body").replaceChildren(el("p", { class: "legend", text: err.message }));
  }
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("q").value.trim();
  if (q) runSearch(q);
});
$("close-explanation").addEventListener("click", () => {
  $("explanation").hidden = true;
  for (const c of document.querySelectorAll(".card.selected")) c.classList.remove("selected");
});

function renderExamples(examples) {
  const box = $("examples");
  box.replaceChildren(el("span", { text: "Try:" }));
  for (const ex of examples) {
    const b = el("button", { type: "button", text: ex, title: "search for this" });
    b.addEventListener("click", () => runSearch(ex));
    box.append(b);
  }
  box.hidden = !examples.length;
}

(async () => {
  // the URL restores a search: q, k and the mode
  const params = new URLSearchParams(location.search);
  const k = params.get("k");
  if (k && [...$("k").options].some((o) => o.value === k)) $("k").value = k;
  $("exact").checked = params.get("mode") === "exhaustive";
  const q = params.get("q");
  if (q) runSearch(q);
  try {
    const h = await getJSON("/health");
    $("footer").textContent = `${h.videos} videos · model ${h.model} (${h.variant}) · hanet ${h.version}`;
    renderExamples(h.examples || []);
  } catch (_) { /* the page works without it */ }
})();
