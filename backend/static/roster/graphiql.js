/* Roster's GraphiQL: boots the vendored GraphiQL and its explorer plugin
 * (static/graphiql/, written by scripts/vendor_graphiql.sh) from a file of ours rather than an
 * inline script, so the page's Content-Security-Policy allows scripts from this origin only.
 *
 * The URL keeps the editors: ?q= (the query), &variables= and &headers= (JSON text), and is
 * updated as they change. A link shares a query with its Authorization header, so such a link
 * is as secret as the token it holds. (?query= is not one of them: /graphql runs a GET with a
 * query, as GraphQL over HTTP says.)
 */
"use strict";

(function () {
  const root = document.getElementById("graphiql");
  const params = new URLSearchParams(window.location.search);

  // GraphiQL's dialogs add a <style> element (react-remove-scroll), which takes its nonce
  // from this global: the policy allows an inline style only with the request's nonce.
  window.__webpack_nonce__ = root.dataset.styleNonce;

  const DEFAULT_QUERY = `# Roster's GraphQL API. Every operation
# needs a token: in Headers below, put
#   {"Authorization": "Bearer rst_…"}
# (make demo prints one), or log in at
# /admin/ first. Run it: Ctrl-Enter or ▶.

{
  departments(first: 5) {
    totalCount
    nodes { id department }
  }
}
`;

  let pendingURL = null;

  /** Keep an editor's text in the URL, replacing one history entry per pause in typing
   * (browsers throttle replaceState called on every keystroke). */
  function keepInURL(name, value) {
    if (value) {
      params.set(name, value);
    } else {
      params.delete(name);
    }
    clearTimeout(pendingURL);
    pendingURL = setTimeout(function () {
      const search = params.toString();
      history.replaceState(null, "", search ? "?" + search : window.location.pathname);
    }, 200);
  }

  const fetcher = GraphiQL.createFetcher({
    url: root.dataset.url,
    // a logged-in admin session's POST passes Django's CSRF check with it; a token needs none
    headers: { "X-CSRFToken": root.dataset.csrfToken },
  });

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultQuery: DEFAULT_QUERY,
      query: params.get("q") ?? undefined,
      variables: params.get("variables") ?? undefined,
      headers: params.get("headers") ?? undefined,
      onEditQuery: function (value) {
        keepInURL("q", value === DEFAULT_QUERY ? "" : value); // a plain /graphql stays plain
      },
      onEditVariables: function (value) {
        keepInURL("variables", value);
      },
      onEditHeaders: function (value) {
        keepInURL("headers", value);
      },
      // the Headers tab open first: no operation runs without a token
      defaultEditorToolsVisibility: params.has("variables") ? "variables" : "headers",
      isHeadersEditorEnabled: true,
      // the URL keeps the headers: no token written to the browser's storage
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    }),
  );
})();
