// Fetch helpers for the JSON API: errors become Error objects carrying the API's {error, message}.

// The API key the user entered, sent as X-Api-Key on every call. Kept in sessionStorage (this tab, until it closes),
// never localStorage: a key left on a shared facility PC would outlive the session.
// A browser that blocks site data throws on reading sessionStorage at all: the key then lasts for this page only,
// rather than the whole interface failing to start.
const KEY_ITEM = 'wasteclassifier.api-key';
let pageKey = '';
export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM) ?? '';
  } catch {
    return pageKey;
  }
}
export function setApiKey(value) {
  const key = value.trim();
  pageKey = key;
  try {
    if (key) sessionStorage.setItem(KEY_ITEM, key); else sessionStorage.removeItem(KEY_ITEM);
  } catch {
    // Storage blocked: pageKey serves until the page is reloaded.
  }
  document.dispatchEvent(new CustomEvent('api-key-changed'));
}

async function request(url, options = {}) {
  const key = apiKey();
  // The headers are merged last: options' own headers (a PUT's Content-Type) replaced Accept, and would drop the key.
  const headers = { Accept: 'application/json', ...options.headers, ...(key ? { 'X-Api-Key': key } : {}) };
  const response = await fetch(url, { ...options, headers });
  const text = await response.text();
  // A proxy's or the server's HTML error page is not JSON: say what happened rather than "SyntaxError".
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new Error(`${url} answered something other than JSON`);
  }
  if (!response.ok) {
    let message = body?.message ?? `${response.status} ${response.statusText}`;
    // The API's message names the role needed (an admin key, any key); say where the key goes.
    if (response.status === 401 || response.status === 403) {
      message += key ? ' — change the API key (top right)' : ' — enter an API key (top right)';
      document.dispatchEvent(new CustomEvent('api-key-refused', { detail: { status: response.status, message } }));
    }
    const error = new Error(message);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

export const getJson = url => request(url);
export const postForm = (url, form) => request(url, { method: 'POST', body: form });
export const post = url => request(url, { method: 'POST' });
export const del = url => request(url, { method: 'DELETE' });
export const putJson = (url, value) =>
  request(url, { method: 'PUT', body: JSON.stringify(value), headers: { 'Content-Type': 'application/json' } });

/** Query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const s = q.toString();
  return s ? `?${s}` : '';
}
