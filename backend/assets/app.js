// The backend's page: who you are (/api/me), your notes (/api/notes), sign out.
// Served same-origin under a strict CSP: no inline code, no external assets,
// text always set with textContent (a note is the user's text, never markup).
"use strict";

const byId = (id) => document.getElementById(id);
// Pages of the listing read at most (100 notes each).
const MAX_PAGES = 20;

/** One API call; `data` is the parsed JSON body, or null (204, or a body ALB1 wrote). */
async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, data };
}

/** Says what went wrong in the status line (the API's own message when there is one). */
function problem(what, answer) {
  const detail = answer.data && answer.data.message ? `: ${answer.data.message}` : "";
  byId("status").textContent = `${what} failed (HTTP ${answer.status})${detail}`;
}

/** The session is gone (ALB1 answers 401 for the API): say so, offer the login. */
function signedOut() {
  byId("loading").hidden = true;
  byId("signed-in").hidden = true;
  byId("nav").hidden = true;
  byId("signed-out").hidden = false;
}

/** A 401 means signed out; anything else not ok is reported. True when the answer was ok. */
function ok(what, answer, ...statuses) {
  if (statuses.includes(answer.status)) return true;
  if (answer.status === 401) signedOut();
  else problem(what, answer);
  return false;
}

function showIdentity(me) {
  const list = (xs) => (xs && xs.length ? xs.join(", ") : "none");
  byId("who").textContent = me.username || me.client_id || me.sub;
  byId("kind").textContent = me.kind || (me.username ? "user" : "machine");
  byId("sub").textContent = me.sub;
  byId("groups").textContent = list(me.groups);
  byId("scopes").textContent = list(me.scope);
  byId("loading").hidden = true;
  byId("signed-in").hidden = false;
  byId("nav").hidden = false;
}

function noteItem(note) {
  const item = byId("note-template").content.firstElementChild.cloneNode(true);
  item.dataset.id = note.id;
  item.querySelector(".text").textContent = note.text;
  const updated = item.querySelector(".updated");
  updated.textContent = note.updated_at || "";
  if (note.updated_at) updated.dateTime = note.updated_at;
  item.querySelector(".delete").addEventListener("click", () => removeNote(note.id));
  return item;
}

/** Every note of the caller, following the listing's cursors. */
async function loadNotes() {
  const list = byId("notes");
  list.dataset.state = "loading";
  const notes = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const query = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
    const answer = await api("GET", `/api/notes${query}`);
    if (!ok("Listing your notes", answer, 200)) return;
    notes.push(...answer.data.notes);
    cursor = answer.data.next;
    if (!cursor) break;
  }
  list.replaceChildren(...notes.map(noteItem));
  byId("empty").hidden = notes.length > 0;
  list.dataset.state = "loaded";
}

/** A new note id: 32 hex digits (the API allows [A-Za-z0-9_-], 1-64). */
function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function addNote(event) {
  event.preventDefault();
  const input = byId("new-note");
  const text = input.value.trim();
  if (!text) return;
  byId("status").textContent = "";
  const answer = await api("PUT", `/api/notes/${newId()}`, { text });
  if (!ok("Adding the note", answer, 200, 201)) return;
  input.value = "";
  await loadNotes();
}

async function removeNote(id) {
  byId("status").textContent = "";
  const answer = await api("DELETE", `/api/notes/${encodeURIComponent(id)}`);
  if (!ok("Deleting the note", answer, 204, 404)) return;
  await loadNotes();
}

async function start() {
  byId("add-form").addEventListener("submit", addNote);
  const me = await api("GET", "/api/me");
  if (!ok("Reading who you are", me, 200)) {
    byId("loading").hidden = true;
    return;
  }
  showIdentity(me.data);
  await loadNotes();
}

start().catch((error) => {
  byId("loading").hidden = true;
  byId("status").textContent = `The page could not load: ${error.message}`;
});
