// Fetch helpers for the JSON API: errors become Error objects carrying the API's {error, message}.
async function request(url, options = {}) {
  const response = await fetch(url, { headers: { Accept: 'application/json', ...options.headers }, ...options });
  const text = await response.text();
  // A proxy's or the server's HTML error page is not JSON: say what happened rather than "SyntaxError".
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new Error(`${url} answered something other than JSON`);
  }
  if (!response.ok) {
    const error = new Error(body?.message ?? `${response.status} ${response.statusText}`);
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
