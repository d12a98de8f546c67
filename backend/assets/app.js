// The backend's page: who you are (/api/me), your notes (/api/notes), sign out.
// Served same-origin under a strict CSP: no inline code, no external assets,
// text always set with textContent (a note is the user's text, never markup).
"use strict";

const byId = (id) => document.getElementById(id);
// Pages of the listing read at most (100 notes each).
const MAX_PAGES = 20;

/**
 * One API call; `data` is the parsed JSON body, or null (204, or a body ALB1 wrote).
 * `signedOut` names how ALB1 ended the session, when it did: "401" (the API rule's
 * `deny`), "redirect" (a redirect to the login: never followed, `redirect: "manual"`
 * makes it an opaque answer) or "failed" (the request failed outright, as one that
 * followed a cross-origin redirect to the login does). AWS's documents differ on
 * whether an expired session meets the 401 or the redirect; the page takes all three.
 */
async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, redirect: "manual" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { status: 0, data: null, signedOut: "failed" };
  }
  if (response.type === "opaqueredirect") return { status: 0, data: null, signedOut: "redirect" };
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, data, signedOut: response.status === 401 ? "401" : null };
}

/** Says what went wrong in the status line (the API's own message when there is one). */
function problem(what, answer) {
  const detail = answer.data && answer.data.message ? `: ${answer.data.message}` : "";
  byId("status").textContent = `${what} failed (HTTP ${answer.status})${detail}`;
}

/** The session is gone (see `api`; `how` says which way): say so, offer the login. */
function signedOut(how) {
  byId("signed-out").dataset.how = how;
  byId("loading").hidden = true;
  byId("signed-in").hidden = true;
  byId("nav").hidden = true;
  byId("signed-out").hidden = false;
}

/** A session ALB1 ended means signed out; anything else not ok is reported. True when the answer was ok. */
function ok(what, answer, ...statuses) {
  if (statuses.includes(answer.status)) return true;
  if (answer.signedOut) signedOut(answer.signedOut);
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
