/*
 * The self-service page of ngx_http_auth_pat_module (auth_pat_ui): list,
 * create, rotate and revoke the signed-in user's personal access tokens
 * through the admin API named by <html data-api>.
 *
 * A plaintext token lives only in the secret dialog's input while that
 * dialog is open (and, should a second one ever arrive meanwhile, in a
 * queue until the first is closed): it is never put anywhere else in the
 * DOM, in storage, in the URL or on the console, and the input is emptied
 * when the dialog closes or the page is left.
 *
 * One write (create, rotate, revoke) is in flight at a time for the whole
 * page; while it is, its dialog cannot be closed and no other can start.
 */
'use strict';

const API = (document.documentElement.dataset.api || '/v1/personal-access-tokens').replace(/\/+$/, '');
const PAGE_SIZE = 25;
const PRESET_DAYS = [7, 30, 90];
const DAY = 86400;
const UNAVAILABLE = 'The token service is unavailable; try again.';
const UNREACHABLE = 'The token service could not be reached; try again.';
const SIGNED_OUT = 'You are signed out: sign in again (reload the page).';
const UNEXPECTED = 'Unexpected answer from the token service; try again.';
const MISCONFIGURED = 'This page is misconfigured: its API address (data-api) must be a path on this site, without "?" or "#". Nothing was sent.';

const view = {
  page: 0,
  status: '',
  search: '',
  sortBy: 'createdAt',
  sortDirection: 'desc',
  total: 0,
};
let config = null;
let listRequest = 0;
let pendingAction = null;   /* {kind: 'revoke'|'rotate', id, name} */
let busyDialog = null;      /* the dialog whose write is in flight */
const secretQueue = [];     /* [plaintext, name, opener] waiting for the secret dialog */
const openers = new WeakMap();

const $ = (id) => document.getElementById(id);

/* ---- talking to the API ---- */

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/*
 * The API's URL for path, or an ApiError if data-api names anything but a
 * path on this origin: another origin, a query or fragment, or "/" alone.
 */
function apiUrl(path) {
  let url = null;
  if (API !== '' && !/[?#]/.test(API)) {
    try {
      url = new URL(API + path, location.href);
    } catch {
      url = null;
    }
  }
  if (!url || url.origin !== location.origin) {
    throw new ApiError(-1, MISCONFIGURED);
  }
  return url.href;
}

async function callApi(method, path, body) {
  const url = apiUrl(path);
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, UNREACHABLE);
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (response.ok) {
    /* an SSO proxy's login page, say: not the API's answer */
    if (json === null || typeof json !== 'object') {
      throw new ApiError(response.status, UNEXPECTED);
    }
    return json;
  }
  throw new ApiError(response.status, errorMessage(response.status, json));
}

function hasMessage(json) {
  return json !== null && typeof json === 'object' && typeof json.message === 'string' && json.message !== '';
}

function errorMessage(status, json) {
  if (status === 503) {
    return UNAVAILABLE;
  }
  if (hasMessage(json)) {
    return json.message;
  }
  if (status === 401) {
    /* not the API's JSON: auth_basic's own page, say */
    return SIGNED_OUT;
  }
  return `The request failed (HTTP ${status}).`;
}

/* any error as a message for the page: never a raw JS exception */
function asApiError(err) {
  return err instanceof ApiError ? err : new ApiError(-2, UNEXPECTED);
}

/* the data of an answer {"data": {...}}, or an ApiError */
function dataOf(answer) {
  if (!answer || typeof answer.data !== 'object' || answer.data === null) {
    throw new ApiError(-2, UNEXPECTED);
  }
  return answer.data;
}

/* ---- alerts and notices ---- */

function showPageError(error) {
  const err = asApiError(error);
  $('alert-text').textContent = err.message;
  $('retry').hidden = !(err.status === 503 || err.status === 0);
  $('alert').hidden = false;
}

function clearPageError() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

function showDialogError(dialog, err) {
  const box = dialog.querySelector('.alert');
  box.textContent = asApiError(err).message;
  box.hidden = false;
}

function clearDialogError(dialog) {
  const box = dialog.querySelector('.alert');
  if (box) {
    box.textContent = '';
    box.hidden = true;
  }
}

function announce(text) {
  $('notice').textContent = text;
}

/* ---- times ---- */

const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'always' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

function validTime(iso) {
  return typeof iso === 'string' && Number.isFinite(Date.parse(iso));
}

function relativeTime(iso) {
  if (!validTime(iso)) {
    return String(iso);
  }
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 60) {
    return seconds >= 0 ? 'in under a minute' : 'just now';
  }
  const units = [
    ['minute', 60, 3600],
    ['hour', 3600, 2 * DAY],
    ['day', DAY, 60 * DAY],
    ['month', 30 * DAY, 730 * DAY],
    ['year', 365 * DAY, Infinity],
  ];
  const [unit, size] = units.find(([, , below]) => abs < below);
  return relativeFormat.format(Math.round(seconds / size), unit);
}

function timeElement(iso, text) {
  if (!validTime(iso)) {
    return document.createTextNode(String(iso));
  }
  const time = document.createElement('time');
  time.dateTime = iso;
  time.title = fullFormat.format(new Date(iso));
  time.textContent = text;
  return time;
}

function expiryCell(token) {
  if (!token.expiresAt) {
    return document.createTextNode('never');
  }
  const past = Date.parse(token.expiresAt) <= Date.now();
  const text = relativeTime(token.expiresAt);
  return timeElement(token.expiresAt, past ? `expired ${text}` : text);
}

function lastUsedCell(token) {
  if (!token.lastUsedAt) {
    return document.createTextNode('never');
  }
  return timeElement(token.lastUsedAt, relativeTime(token.lastUsedAt));
}

/* ---- the list ---- */

function listQuery() {
  const q = new URLSearchParams({
    page_index: String(view.page),
    page_size: String(PAGE_SIZE),
    sort_by: view.sortBy,
    sort_direction: view.sortDirection,
  });
  if (view.status) {
    q.set('status', view.status);
  }
  if (view.search) {
    q.set('search_term', view.search);
  }
  return '?' + q.toString();
}

async function loadList() {
  const request = ++listRequest;
  $('tokens').setAttribute('aria-busy', 'true');
  try {
    const list = await callApi('GET', listQuery());
    if (request !== listRequest) {
      return;
    }
    if (!Array.isArray(list.items) || !Number.isFinite(list.totalCount)) {
      throw new ApiError(-2, UNEXPECTED);
    }
    const lastPage = Math.max(0, Math.ceil(list.totalCount / PAGE_SIZE) - 1);
    if (list.items.length === 0 && view.page > lastPage) {
      view.page = lastPage;
      return loadList();
    }
    clearPageError();
    renderList(list);
  } catch (err) {
    if (request === listRequest) {
      showPageError(err);
    }
  } finally {
    if (request === listRequest) {
      $('tokens').setAttribute('aria-busy', 'false');
    }
  }
}

function renderList(list) {
  view.total = list.totalCount;
  const rows = $('rows');
  const focused = rows.contains(document.activeElement) ? document.activeElement : null;
  rows.replaceChildren(...list.items.map(tokenRow));
  if (focused) {
    keepFocus(focused);
  }
  $('tokens').hidden = list.items.length === 0;
  $('empty').hidden = list.items.length !== 0;
  renderFacets(list.facets && list.facets.status);
  renderPager(list.items.length);
}

/*
 * A re-rendered list must not drop the keyboard user's focus to the body:
 * the same button of the same token if it is still there, else the heading.
 */
function keepFocus(previous) {
  const id = previous.closest('tr').dataset.id;
  const again = document.querySelector(`#rows tr[data-id="${CSS.escape(id)}"] button[data-action="${previous.dataset.action}"]`);
  (again || $('page-title')).focus();
}

function cell(label, ...content) {
  const td = document.createElement('td');
  td.dataset.label = label;
  td.append(...content);
  return td;
}

function tokenRow(token) {
  const tr = document.createElement('tr');
  tr.dataset.id = token.id;

  const name = document.createElement('span');
  name.className = 'token-name';
  name.textContent = token.name;

  const prefix = document.createElement('code');
  prefix.textContent = token.prefix + '…';

  const scopes = document.createElement('span');
  scopes.className = 'scopes';
  for (const scope of token.scopes) {
    const tag = document.createElement('span');
    tag.className = 'scope';
    tag.textContent = scope;
    scopes.append(tag, ' ');
  }
  if (token.scopes.length === 0) {
    scopes.textContent = 'none';
  }

  const status = document.createElement('span');
  status.className = `status status-${token.status}`;
  status.textContent = token.status;

  const actions = document.createElement('span');
  actions.className = 'row-actions';
  if (token.status === 'active') {
    actions.append(actionButton('Rotate', 'rotate', token), actionButton('Revoke', 'revoke', token));
  }

  tr.append(
    cell('Name', name),
    cell('Prefix', prefix),
    cell('Scopes', scopes),
    cell('Created', timeElement(token.createdAt, relativeTime(token.createdAt))),
    cell('Expires', expiryCell(token)),
    cell('Last used', lastUsedCell(token)),
    cell('Status', status),
    cell('Actions', actions),
  );
  return tr;
}

function actionButton(text, kind, token) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = kind === 'revoke' ? 'danger-outline' : '';
  button.dataset.action = kind;
  const hidden = document.createElement('span');
  hidden.className = 'visually-hidden';
  hidden.textContent = ` token ${token.name}`;
  button.append(text, hidden);
  button.disabled = busyDialog !== null;
  button.addEventListener('click', () => confirmAction(kind, token));
  return button;
}

function renderFacets(counts) {
  const c = counts || {};
  const all = (c.active || 0) + (c.expired || 0) + (c.revoked || 0);
  for (const span of document.querySelectorAll('[data-count]')) {
    const key = span.dataset.count;
    span.textContent = String(key === 'all' ? all : c[key] || 0);
  }
  for (const chip of document.querySelectorAll('.chip')) {
    chip.setAttribute('aria-pressed', String(chip.dataset.status === view.status));
  }
}

function renderPager(shown) {
  const first = view.page * PAGE_SIZE;
  $('range').textContent = view.total === 0
    ? '0 tokens'
    : `${first + 1}–${first + shown} of ${view.total}`;
  $('prev').disabled = view.page === 0;
  $('next').disabled = first + shown >= view.total;
}

function showPage(page) {
  view.page = page;
  loadList();
}

let searchTimer = 0;

function searchSoon() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const term = $('search').value.trim();
    if (term !== view.search) {
      view.search = term;
      showPage(0);
    }
  }, 300);
}

/* ---- dialogs ---- */

function openDialog(dialog, opener) {
  openers.set(dialog, opener || document.activeElement);
  clearDialogError(dialog);
  dialog.showModal();
}

function returnFocus(dialog) {
  if (document.querySelector('dialog[open]')) {
    return;
  }
  const opener = openers.get(dialog);
  openers.delete(dialog);
  const target = opener && opener.isConnected && !opener.disabled ? opener : $('new-token');
  target.focus();
}

/*
 * The write of dialog starts: its buttons and every button that starts
 * another write are disabled, and the dialog cannot be closed (see wire()).
 */
function beginWrite(dialog) {
  busyDialog = dialog;
  setWriteButtons(dialog, true);
}

function endWrite(dialog) {
  busyDialog = null;
  setWriteButtons(dialog, false);
}

function setWriteButtons(dialog, disabled) {
  for (const button of document.querySelectorAll('#new-token, #rows button[data-action]')) {
    button.disabled = disabled;
  }
  for (const button of dialog.querySelectorAll('.actions button')) {
    button.disabled = disabled;
  }
  if (!disabled && dialog.open && !dialog.contains(document.activeElement)) {
    /* a disabled button loses the focus: give it back */
    dialog.querySelector('.actions button:last-child').focus();
  }
}

function closeDialogOf(button) {
  const dialog = button.closest('dialog');
  if (busyDialog === dialog) {
    return;
  }
  if (dialog.id === 'secret-dialog') {
    forgetSecret();   /* now, not a task later when 'close' fires */
  }
  dialog.close();
}

/* ---- create ---- */

async function loadConfig() {
  try {
    const answer = await callApi('GET', '/config');
    config = answer.data;
  } catch (err) {
    showPageError(err);
  }
  return config;
}

async function openCreate() {
  const opener = document.activeElement;
  if (busyDialog || (!config && !(await loadConfig())) || busyDialog) {
    return;
  }
  resetCreateForm();
  openDialog($('create-dialog'), opener);
}

function dateInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function resetCreateForm() {
  const form = $('create-form');
  form.reset();
  const max = config.maxLifetime;
  const lifetime = config.defaultLifetime ?? max;

  for (const radio of form.querySelectorAll('input[name=expiry]')) {
    const days = Number(radio.value);
    radio.disabled = Number.isFinite(days) && max !== null && days * DAY > max;
  }
  const none = form.querySelector('input[name=expiry][value=none]');
  none.disabled = max !== null;
  $('expiry-none-choice').hidden = max !== null;

  const dateInput = $('custom-date');
  const now = Date.now();
  dateInput.min = dateInputValue(new Date(now));
  dateInput.max = max === null ? '' : dateInputValue(new Date(now + (max - DAY) * 1000));
  $('expiry-hint').textContent = max === null
    ? ''
    : `Tokens here last at most ${Math.floor(max / DAY)} days.`;

  let choice = 'none';
  if (lifetime !== null) {
    const preset = PRESET_DAYS.find((d) => d * DAY === lifetime);
    choice = preset ? String(preset) : 'custom';
    dateInput.value = dateInputValue(new Date(now + lifetime * 1000));
  }
  form.querySelector(`input[name=expiry][value="${choice}"]`).checked = true;
  showCustomDate();
  renderScopeChoices();
}

function showCustomDate() {
  const custom = $('create-form').querySelector('input[name=expiry][value=custom]').checked;
  $('custom-date-field').hidden = !custom;
  $('custom-date').required = custom;
}

function renderScopeChoices() {
  const allowed = config.scopesAllowed;
  const listed = Array.isArray(allowed);
  $('scope-choices').hidden = !listed;
  $('scope-text-field').hidden = listed;
  if (!listed) {
    return;
  }
  const list = $('scope-list');
  list.replaceChildren();
  if (allowed.length === 0) {
    list.textContent = 'No scopes can be granted here.';
  }
  for (const scope of allowed) {
    const label = document.createElement('label');
    label.className = 'choice';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = 'scope';
    box.value = scope;
    label.append(box, ' ', scope);
    list.append(label);
  }
}

function chosenExpiry() {
  const form = $('create-form');
  const choice = form.querySelector('input[name=expiry]:checked').value;
  if (choice === 'none') {
    return null;
  }
  if (choice !== 'custom') {
    return new Date(Date.now() + Number(choice) * DAY * 1000).toISOString();
  }
  /* the end of the chosen local day, but never past the longest lifetime */
  const [y, m, d] = $('custom-date').value.split('-').map(Number);
  let end = new Date(y, m - 1, d, 23, 59, 59).getTime();
  if (config.maxLifetime !== null) {
    end = Math.min(end, Date.now() + (config.maxLifetime - 60) * 1000);
  }
  return new Date(end).toISOString();
}

function chosenScopes() {
  if (Array.isArray(config.scopesAllowed)) {
    return [...$('create-form').querySelectorAll('input[name=scope]:checked')].map((box) => box.value);
  }
  return $('scope-text').value.split(/\s+/).filter(Boolean);
}

async function submitCreate(event) {
  event.preventDefault();
  const dialog = $('create-dialog');
  if (busyDialog) {
    return;
  }
  clearDialogError(dialog);
  beginWrite(dialog);
  let created;
  try {
    created = dataOf(await callApi('POST', '', {
      name: $('create-name').value.trim(),
      expiresAt: chosenExpiry(),
      scopes: chosenScopes(),
    }));
  } catch (err) {
    endWrite(dialog);
    showDialogError(dialog, err);
    return;
  }
  endWrite(dialog);
  const opener = openers.get(dialog);
  dialog.close();
  showSecret(created.token, created.name, opener);
  announce(`Token “${created.name}” created.`);
  view.page = 0;
  loadList();
}

/* ---- the plaintext, shown once ---- */

/* text, the name isolated (a right-to-left name or a format character does not reorder the rest), text */
function withName(element, before, name, after) {
  const bdi = document.createElement('bdi');
  bdi.textContent = name;
  element.replaceChildren(before, bdi, after);
}

/* An open secret dialog is never overwritten: a second plaintext waits for it to close. */
function showSecret(plaintext, name, opener) {
  const dialog = $('secret-dialog');
  if (dialog.open) {
    secretQueue.push([plaintext, name, opener]);
    return;
  }
  $('secret').value = plaintext;
  withName($('secret-name'), '“', name, '”');
  $('copy-status').textContent = '';
  openDialog(dialog, opener);
}

function showNextSecret() {
  if (secretQueue.length > 0 && !$('secret-dialog').open) {
    showSecret(...secretQueue.shift());
  }
}

function forgetSecret() {
  const input = $('secret');
  input.setSelectionRange(0, 0);
  input.value = '';
  $('secret-name').textContent = '';
  $('copy-status').textContent = '';
  /* the fallback of copySecret selected it */
  const selection = document.getSelection();
  if (selection) {
    selection.removeAllRanges();
  }
}

/* leaving the page (or its going into the back-forward cache) forgets every plaintext */
function forgetAllSecrets() {
  secretQueue.length = 0;
  forgetSecret();
  const dialog = $('secret-dialog');
  if (dialog.open) {
    dialog.close();
  }
}

async function copySecret() {
  const input = $('secret');
  try {
    await navigator.clipboard.writeText(input.value);
    $('copy-status').textContent = 'Copied to the clipboard.';
  } catch {
    input.focus();
    input.select();
    $('copy-status').textContent = 'Copying was refused: the token is selected, press Ctrl+C (⌘C) to copy it.';
  }
}

/* ---- revoke and rotate ---- */

function fullTime(iso) {
  return validTime(iso) ? fullFormat.format(new Date(iso)) : String(iso);
}

function confirmAction(kind, token) {
  if (busyDialog) {
    return;
  }
  pendingAction = { kind, id: token.id, name: token.name };
  const rotate = kind === 'rotate';
  withName($('confirm-title'), rotate ? 'Rotate token “' : 'Revoke token “', token.name, '”?');
  /* which of two tokens of the same name: the prefix and the creation time */
  const which = document.createElement('span');
  which.className = 'confirm-which';
  const prefix = document.createElement('code');
  prefix.textContent = `${token.prefix}…`;
  which.append('The token ', prefix, `, created ${fullTime(token.createdAt)}. `);
  $('confirm-text').replaceChildren(which, rotate
    ? 'It stops working at once. A new token with the same name, scopes and lifetime replaces it, and is shown once.'
    : 'It stops working at once. Anything that uses it will be refused. This cannot be undone.');
  $('confirm-ok').textContent = rotate ? 'Rotate token' : 'Revoke token';
  openDialog($('confirm-dialog'));
}

async function runPendingAction() {
  const dialog = $('confirm-dialog');
  const button = $('confirm-ok');
  const action = pendingAction;
  if (!action || busyDialog) {
    return;
  }
  clearDialogError(dialog);
  beginWrite(dialog);
  let rotated = null;
  try {
    const path = '/' + encodeURIComponent(action.id);
    if (action.kind === 'rotate') {
      rotated = dataOf(await callApi('POST', path + '/rotate', {}));
    } else {
      await callApi('DELETE', path);
    }
  } catch (err) {
    endWrite(dialog);
    showDialogError(dialog, err);
    return;
  }
  endWrite(dialog);
  const opener = openers.get(dialog);
  pendingAction = null;
  dialog.close();
  if (rotated) {
    showSecret(rotated.token, rotated.name, opener);
    announce(`Token “${action.name}” rotated.`);
  } else {
    announce(`Token “${action.name}” revoked.`);
  }
  loadList();
}

/* ---- wiring ---- */

function wire() {
  $('new-token').addEventListener('click', openCreate);
  $('retry').addEventListener('click', () => {
    clearPageError();
    if (!config) {
      loadConfig();
    }
    loadList();
  });
  for (const chip of document.querySelectorAll('.chip')) {
    chip.addEventListener('click', () => {
      view.status = chip.dataset.status;
      showPage(0);
    });
  }
  $('search').addEventListener('input', searchSoon);
  $('sort-by').addEventListener('change', (e) => {
    view.sortBy = e.target.value;
    showPage(0);
  });
  $('sort-direction').addEventListener('change', (e) => {
    view.sortDirection = e.target.value;
    showPage(0);
  });
  $('prev').addEventListener('click', () => showPage(Math.max(0, view.page - 1)));
  $('next').addEventListener('click', () => showPage(view.page + 1));

  $('create-form').addEventListener('submit', submitCreate);
  $('create-form').addEventListener('change', (e) => {
    if (e.target.name === 'expiry') {
      showCustomDate();
    }
  });
  $('copy').addEventListener('click', copySecret);
  $('confirm-ok').addEventListener('click', runPendingAction);

  for (const button of document.querySelectorAll('dialog .cancel')) {
    button.addEventListener('click', () => closeDialogOf(button));
  }
  for (const dialog of document.querySelectorAll('dialog')) {
    /* while its write is in flight, Escape does not close it */
    dialog.addEventListener('cancel', (e) => {
      if (busyDialog === dialog) {
        e.preventDefault();
      }
    });
    dialog.addEventListener('close', () => {
      if (busyDialog === dialog) {
        dialog.showModal();   /* closed anyway (a browser may not let cancel be prevented twice) */
        return;
      }
      returnFocus(dialog);
    });
  }
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && busyDialog) {
      e.preventDefault();
    }
  });
  $('secret-dialog').addEventListener('cancel', forgetSecret);
  $('secret-dialog').addEventListener('close', () => {
    forgetSecret();
    showNextSecret();
  });
  window.addEventListener('pagehide', forgetAllSecrets);
  $('confirm-dialog').addEventListener('close', () => {
    pendingAction = null;
  });
}

wire();
loadConfig();
loadList();
