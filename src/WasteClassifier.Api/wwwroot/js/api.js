// Fetch helpers for the JSON API: errors become Error objects carrying the API's {error, message}.
async function request(url, options = {}) {
  const response = await fetch(url, { headers: { Accept: 'application/json', ...options.headers }, ...options });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
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
