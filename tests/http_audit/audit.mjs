// graphql-http's server audits against a live Roster: `node audit.mjs URL`, with an admin
// token in ROSTER_TOKEN. Prints one JSON array: each audit's id, name, status and, when it is
// not ok, the reason. tests/test_graphql_http.py runs it and asserts that every status is ok.
import { serverAudits } from 'graphql-http';

const [url] = process.argv.slice(2);
const token = process.env.ROSTER_TOKEN;
if (!url || !token) {
  console.error('usage: ROSTER_TOKEN=rst_... node audit.mjs http://127.0.0.1:8000/graphql');
  process.exit(2);
}

// Every operation on /graphql needs a token: the audits' requests get it on the way out.
function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = [];
// One at a time: the test server is one process on a small machine.
for (const audit of serverAudits({ url, fetchFn: fetchWithToken })) {
  const { id, name, status, reason } = await audit.fn();
  results.push({ id, name, status, ...(reason === undefined ? {} : { reason }) });
}
console.log(JSON.stringify(results, null, 1));
