/*
 * <notify-inbox>: a learner's notification inbox as a framework-free Web Component.
 *
 *   <script src="https://notify.example.com/static/notify/notify-inbox.js" defer></script>
 *   <notify-inbox api-base="https://notify.example.com"></notify-inbox>
 *   <script>
 *     document.querySelector("notify-inbox").tokenProvider = () =>
 *       fetch("/my-backend/inbox-token", {method: "POST"}).then(r => r.json());
 *   </script>
 *
 * The token provider returns (a Promise of) a token string or an object
 * {token, expires_at | expires_in, user_id, platform}: a short-lived inbox
 * token the page's backend got from POST /api/v1/inbox-tokens. The component
 * asks again before it runs out and whenever the server turns it away.
 *
 * Attributes: api-base (default: this page's origin), page-size (20),
 * poll-interval (ms, 15000), strings (JSON dictionary of replacement texts),
 * lang (dates). Colours: the --notify-* custom properties below.
 * Notification text is only ever set as text (textContent), never as HTML.
 */
(() => {
  "use strict";

  const STRINGS = {
    title: "Notifications",
    badge: "{n} unread",
    markAllRead: "Mark all as read",
    unreadOnly: "Unread only",
    unread: "Unread",
    dismiss: "Dismiss",
    dismissLabel: "Dismiss: {title}",
    empty: "No notifications",
    loadMore: "Older notifications",
    loading: "Loading…",
    noMore: "No older notifications",
    announce: "New notification: {title}",
    live: "Live",
    connecting: "Connecting…",
    offline: "Reconnecting…",
    signedOut: "Signed out",
    error: "Could not reach the notification service",
    untitled: "(no title)",
  };

  const CSS = `
:host { display: block; font: var(--notify-font, 14px/1.4 system-ui, sans-serif);
  color: var(--notify-fg, #1d2330); background: var(--notify-bg, #fff); }
.box { display: flex; flex-direction: column; height: 100%; max-height: inherit; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5em; padding: .6em .8em;
  border-bottom: 1px solid var(--notify-border, #dde1e8); }
h2 { font-size: 1.1em; margin: 0; }
.badge { min-width: 1.4em; padding: 0 .45em; border-radius: 1em; text-align: center; font-weight: 600;
  background: var(--notify-badge-bg, #c62828); color: var(--notify-badge-fg, #fff); }
.badge[data-zero] { background: var(--notify-muted-bg, #e7e9ee); color: var(--notify-muted, #5b6475); }
.conn { font-size: .85em; color: var(--notify-muted, #5b6475); margin-inline-start: auto; }
button { font: inherit; color: inherit; cursor: pointer; }
.tool { background: none; border: 1px solid var(--notify-border, #dde1e8); border-radius: .4em; padding: .2em .6em; }
.tool[aria-pressed="true"] { background: var(--notify-accent, #1a56db); color: var(--notify-accent-fg, #fff); }
.scroll { overflow-y: auto; flex: 1 1 auto; min-height: 0; }
ul { list-style: none; margin: 0; padding: 0; }
li { display: flex; align-items: flex-start; border-bottom: 1px solid var(--notify-border, #dde1e8);
  border-inline-start: 4px solid transparent; }
li.unread { background: var(--notify-unread-bg, #eef4ff); }
li.level-warning { border-inline-start-color: var(--notify-warning, #b7791f); }
li.level-error { border-inline-start-color: var(--notify-error, #c62828); }
li.level-success { border-inline-start-color: var(--notify-success, #2f855a); }
.open { flex: 1; text-align: start; background: none; border: 0; padding: .6em .8em; display: grid;
  grid-template-columns: auto 1fr; gap: 0 .5em; }
.dot { width: .55em; height: .55em; margin-top: .45em; border-radius: 50%; }
li.unread .dot { background: var(--notify-accent, #1a56db); }
.headline { font-weight: 600; overflow-wrap: anywhere; }
li:not(.unread) .headline { font-weight: 400; }
time { grid-column: 2; font-size: .8em; color: var(--notify-muted, #5b6475); }
.text { grid-column: 2; white-space: pre-wrap; overflow-wrap: anywhere; margin-top: .3em; }
.dismiss { background: none; border: 0; padding: .6em .8em; font-size: 1.1em; color: var(--notify-muted, #5b6475); }
:focus-visible { outline: 2px solid var(--notify-focus, #1a56db); outline-offset: -2px; }
.foot { padding: .5em .8em; text-align: center; color: var(--notify-muted, #5b6475); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
[hidden] { display: none !important; }
`;

  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  // Newest first; ids break ties between rows one send wrote at the same instant.
  const newer = (a, b) => (a.timestamp === b.timestamp ? a.id > b.id : a.timestamp > b.timestamp);

  class NotifyInbox extends HTMLElement {
    static get observedAttributes() {
      return ["strings", "lang"];
    }

    constructor() {
      super();
      this._s = { ...STRINGS };
      this._items = new Map(); // id -> {n, li}
      this._unread = 0;
      this._unreadOnly = false;
      this._hasMore = true;
      this._attempt = 0;
      this._countSeq = 0;
      this._started = false;
      this._tokenProvider = null;
      this._token = null;
      this._tokenExpires = 0;
      this._who = null;
      this._build();
    }

    // -- public API ---------------------------------------------------------

    get tokenProvider() {
      return this._tokenProvider;
    }

    set tokenProvider(fn) {
      this._tokenProvider = fn;
      this._token = null;
      if (this.isConnected) this._start();
    }

    get strings() {
      return { ...this._s };
    }

    set strings(dict) {
      this._s = { ...STRINGS, ...(dict || {}) };
      this._relabel();
    }

    get unreadCount() {
      return this._unread;
    }

    connectedCallback() {
      // A property set before the element was upgraded hides the accessor.
      if (Object.prototype.hasOwnProperty.call(this, "tokenProvider")) {
        const fn = this.tokenProvider;
        delete this.tokenProvider;
        this._tokenProvider = fn;
      }
      if (this._tokenProvider || this.getAttribute("token")) this._start();
    }

    disconnectedCallback() {
      this.stop();
    }

    attributeChangedCallback(name, _old, value) {
      if (name === "strings" && value) {
        try {
          this.strings = JSON.parse(value);
        } catch (e) {
          console.warn("notify-inbox: strings is not JSON", e);
        }
      } else {
        this._relabel();
      }
    }

    /** Close the socket and stop every timer (sign-out, removal from the page). */
    stop() {
      this._started = false;
      clearTimeout(this._reconnectTimer);
      clearInterval(this._pollTimer);
      clearInterval(this._pingTimer);
      this._pollTimer = null;
      if (this._ws) {
        this._ws.onclose = null;
        this._ws.close(1000);
        this._ws = null;
      }
      if (this._bc) this._bc.close();
      this._bc = null;
    }

    // -- set-up -------------------------------------------------------------

    _build() {
      const root = this.attachShadow({ mode: "open" });
      const s = this._s;
      root.append(el("style", { text: CSS }));
      this._title = el("h2", { id: "t", text: s.title });
      this._badge = el("span", { class: "badge", part: "badge", "data-zero": "" }, "0");
      this._conn = el("span", { class: "conn", text: s.connecting });
      this._filter = el("button", { class: "tool", type: "button", "aria-pressed": "false", text: s.unreadOnly });
      this._all = el("button", { class: "tool", type: "button", text: s.markAllRead });
      this._list = el("ul", { role: "list", "aria-labelledby": "t" });
      this._more = el("button", { class: "tool", type: "button", text: s.loadMore });
      this._foot = el("div", { class: "foot" }, this._more);
      this._emptyText = el("span", { text: s.empty, hidden: "" });
      this._foot.append(this._emptyText);
      this._live = el("div", { class: "sr", role: "status", "aria-live": "polite" });
      const header = el("header", {}, this._title, this._badge, this._conn, this._filter, this._all);
      const scroll = el("div", { class: "scroll" }, this._list, this._foot);
      root.append(el("div", { class: "box", part: "box" }, header, scroll, this._live));

      this._filter.addEventListener("click", () => this._setFilter(!this._unreadOnly));
      this._all.addEventListener("click", () => this._markAllRead());
      this._more.addEventListener("click", () => this._loadMore());
      this._list.addEventListener("click", (e) => this._onListClick(e));
      this._list.addEventListener("keydown", (e) => this._onListKey(e));
      // Page further back when the end of the list scrolls into view (inside
      // the component's own scroll box or the page's, whichever clips it).
      this._footVisible = false;
      new IntersectionObserver((entries) => {
        this._footVisible = entries[entries.length - 1].isIntersecting;
        if (this._footVisible) this._loadMore();
      }).observe(this._foot);
    }

    _relabel() {
      const s = this._s;
      this._title.textContent = s.title;
      this._filter.textContent = s.unreadOnly;
      this._all.textContent = s.markAllRead;
      this._more.textContent = s.loadMore;
      this._emptyText.textContent = this._items.size ? s.noMore : s.empty;
      this._setUnread(this._unread, true);
      this._setConn(this._connState || "connecting");
      for (const { n, li } of this._items.values()) this._fillItem(li, n);
    }

    _fmt(key, vars) {
      return String(this._s[key] ?? STRINGS[key]).replace(/\{(\w+)\}/g, (_, k) => String(vars?.[k] ?? ""));
    }

    _apiBase() {
      return (this.getAttribute("api-base") || location.origin).replace(/\/+$/, "");
    }

    _start() {
      if (this._started) return;
      this._started = true;
      if (this._who !== null && !this._bc) this._openChannel(); // after a stop()
      this._reset();
      this._initial = this._loadMore();
      this._connect();
      if (!this._onlineHooked) {
        this._onlineHooked = true;
        // Back on the network: try the socket now instead of at the end of a long backoff.
        window.addEventListener("online", () => {
          this._attempt = 0;
          if (this._started && !this._ws) this._connect();
        });
      }
    }

    _reset() {
      this._items.clear();
      this._list.replaceChildren();
      this._loadedOnce = false;
      this._hasMore = true;
      this._more.hidden = false;
      this._emptyText.hidden = true;
    }

    // -- tokens and HTTP ----------------------------------------------------

    async _getToken(force) {
      const fresh = this._token && (!this._tokenExpires || this._tokenExpires - Date.now() > 30000);
      if (fresh && !force) return this._token;
      if (!this._tokenProvider) {
        const attr = this.getAttribute("token");
        if (!attr) throw new Error("notify-inbox: no token and no tokenProvider");
        return attr;
      }
      if (!this._tokenPending) {
        this._tokenPending = Promise.resolve()
          .then(() => this._tokenProvider())
          .then((value) => {
            const v = typeof value === "string" ? { token: value } : value || {};
            if (!v.token) throw new Error("notify-inbox: the token provider gave no token");
            this._token = v.token;
            this._tokenExpires = v.expires_at
              ? Date.parse(v.expires_at)
              : v.expires_in
                ? Date.now() + v.expires_in * 1000
                : 0;
            const who = v.user_id != null ? `${v.user_id}@${v.platform || ""}` : "";
            if (who !== this._who) {
              this._who = who;
              this._openChannel();
            }
            return this._token;
          })
          .finally(() => {
            this._tokenPending = null;
          });
      }
      return this._tokenPending;
    }

    async _api(path, method = "GET", retried = false) {
      const token = await this._getToken(retried);
      const response = await fetch(this._apiBase() + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        credentials: "omit",
      });
      if (response.status === 401 && !retried && this._tokenProvider) return this._api(path, method, true);
      if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
      return (await response.json()).data;
    }

    _listPath(limit, query) {
      return `/api/v1/notifications?limit=${limit}${this._unreadOnly ? "&status=unread" : ""}${query || ""}`;
    }

    _pageSize() {
      return Math.min(100, Math.max(1, parseInt(this.getAttribute("page-size"), 10) || 20));
    }

    // -- the list -----------------------------------------------------------

    async _loadMore() {
      if (this._loading || !this._hasMore || !this._started) return;
      this._loading = true;
      this._more.textContent = this._s.loading;
      const filter = this._unreadOnly;
      let failed = false;
      try {
        // By cursor: the page after the oldest notification we hold, so arrivals
        // and dismissals meanwhile never shift it.
        const limit = this._pageSize();
        const last = this._list.lastElementChild;
        const cursor = last ? `&before=${encodeURIComponent(last.dataset.id)}` : "";
        const data = await this._api(this._listPath(limit, cursor));
        if (filter !== this._unreadOnly) return; // the filter changed meanwhile
        for (const n of data.notifications) this._add(n, false);
        this._loadedOnce = true;
        this._hasMore = data.notifications.length === limit;
        if (!this._counted) this._refreshUnread().catch((e) => this._fail(e));
      } catch (e) {
        failed = true;
        this._fail(e);
      } finally {
        this._loading = false;
        this._more.textContent = this._s.loadMore;
        this._more.hidden = !this._hasMore;
        this._emptyText.textContent = this._items.size ? this._s.noMore : this._s.empty;
        this._emptyText.hidden = this._hasMore;
      }
      // Keep filling while the end of the list is still in view (the observer
      // only speaks when that changes). After a failure, the next catch-up,
      // poll or scroll tries again.
      if (!failed && this._hasMore && this._footVisible) requestAnimationFrame(() => this._footVisible && this._loadMore());
    }

    /**
     * What arrived while we were not listening: the newest pages, down to a
     * notification we already hold. Only what falls inside the range we have
     * loaded is added (older ones are for paging, so its cursor never jumps),
     * and ids we hold are never added twice.
     */
    async _catchUp() {
      if (this._catching) return (this._catchAgain = true);
      this._catching = true;
      try {
        await this._initial; // the first page first: catching up fills what is above it
        do {
          this._catchAgain = false;
          const filter = this._unreadOnly;
          let pages = 0;
          for (let cursor = "", done = false; !done; pages++) {
            if (pages === 10) {
              // Too much missed to stitch together: start the list afresh.
              this._reset();
              this._initial = this._loadMore();
              break;
            }
            const limit = 50;
            const data = await this._api(this._listPath(limit, cursor));
            if (filter !== this._unreadOnly) break;
            const last = this._list.lastElementChild;
            const oldest = last && this._items.get(last.dataset.id).n;
            for (const n of data.notifications) {
              if (this._items.has(n.id)) done = true;
              if (oldest && this._hasMore && !newer(n, oldest)) done = true;
              else this._add(n, this._loadedOnce);
            }
            if (data.notifications.length < limit) done = true;
            else cursor = `&before=${encodeURIComponent(data.notifications[limit - 1].id)}`;
          }
          await this._refreshUnread();
        } while (this._catchAgain);
      } catch (e) {
        this._fail(e);
      } finally {
        this._catching = false;
      }
    }

    async _refreshUnread() {
      this._counted = true;
      await this._count(() => this._api("/api/v1/notifications/unread"));
    }

    /**
     * A request whose answer carries the unread count. The answer is used only
     * if nothing changed the count meanwhile (a live event, an action here or
     * in another tab): a slow answer must not put back an older count.
     */
    async _count(request) {
      const seq = ++this._countSeq;
      const data = await request();
      if (seq === this._countSeq) this._setUnread(data.unread, true);
      return data;
    }

    /** Add one notification; true when it was new to us. */
    _add(n, announce, silent = false) {
      const known = this._items.get(n.id);
      if (known) {
        if (known.n.is_read !== n.is_read) this._setRead(n.id, n.is_read);
        return false;
      }
      if (this._unreadOnly && n.is_read) return false;
      const li = el("li", { "data-id": n.id });
      this._fillItem(li, n);
      // Insert in order: before the first item older than this one.
      let before = null;
      for (const child of this._list.children) {
        const other = this._items.get(child.dataset.id);
        if (other && newer(n, other.n)) {
          before = child;
          break;
        }
      }
      this._list.insertBefore(li, before);
      this._items.set(n.id, { n, li });
      this._emptyText.hidden = true;
      if (announce) {
        if (!silent) this._live.textContent = this._fmt("announce", { title: this._headline(n) });
        // Host pages that play a sound check `silent` (the user's quiet hours).
        this.dispatchEvent(new CustomEvent("notify-inbox:arrived", { detail: { ...n, silent }, bubbles: true }));
      }
      return true;
    }

    _headline(n) {
      return (n.payload && n.payload.headline) || this._s.untitled;
    }

    _fillItem(li, n) {
      const expanded = li.querySelector(".open")?.getAttribute("aria-expanded") === "true";
      const bodyId = `b-${n.id}`;
      li.className = `${n.is_read ? "" : "unread "}level-${String(n.level || "info").replace(/[^a-z]/g, "")}`;
      const open = el(
        "button",
        { class: "open", type: "button", "aria-expanded": String(expanded), "aria-controls": bodyId },
        el("span", { class: "dot", "aria-hidden": "true" }),
        el("span", { class: "headline", text: this._headline(n) }),
      );
      if (!n.is_read) open.append(el("span", { class: "sr", text: `, ${this._s.unread}` }));
      const when = new Date(n.timestamp);
      open.append(
        el("time", {
          datetime: n.timestamp,
          text: isNaN(when) ? "" : when.toLocaleString(this.getAttribute("lang") || undefined),
        }),
      );
      const text = el("span", { class: "text", id: bodyId, text: (n.payload && n.payload.message) || "" });
      if (!expanded) text.hidden = true;
      open.append(text);
      const dismiss = el("button", {
        class: "dismiss",
        type: "button",
        "aria-label": this._fmt("dismissLabel", { title: this._headline(n) }),
        title: this._s.dismiss,
        text: "×",
      });
      const focused = this.shadowRoot.activeElement;
      const refocus = focused && li.contains(focused) ? (focused.classList.contains("open") ? ".open" : ".dismiss") : null;
      li.replaceChildren(open, dismiss);
      if (refocus) li.querySelector(refocus).focus();
    }

    _setRead(id, isRead) {
      const item = this._items.get(id);
      if (!item || item.n.is_read === isRead) return;
      item.n = { ...item.n, is_read: isRead };
      this._fillItem(item.li, item.n);
    }

    _remove(id) {
      const item = this._items.get(id);
      if (!item) return;
      const focused = this.shadowRoot.activeElement;
      const next = item.li.nextElementSibling || item.li.previousElementSibling;
      item.li.remove();
      this._items.delete(id);
      if (focused && item.li.contains(focused)) (next ? next.querySelector(".open") : this._all).focus();
      if (!this._items.size) {
        this._emptyText.textContent = this._s.empty;
        this._emptyText.hidden = this._hasMore;
      }
    }

    _setUnread(count, answered = false) {
      if (!answered) this._countSeq++;
      this._unread = Math.max(0, count | 0);
      this._badge.textContent = String(this._unread);
      this._badge.setAttribute("aria-label", this._fmt("badge", { n: this._unread }));
      this._badge.toggleAttribute("data-zero", this._unread === 0);
      this.setAttribute("unread", String(this._unread));
      this.dispatchEvent(new CustomEvent("notify-inbox:unread", { detail: { unread: this._unread }, bubbles: true }));
    }

    /** A status change made here, in another tab or on another device. */
    _applyStatus(ids, status) {
      const targets = ids == null ? [...this._items.keys()] : ids;
      for (const id of targets) {
        if (status === "CANCELLED") this._remove(id);
        else this._setRead(id, status === "READ");
      }
    }

    // -- actions ------------------------------------------------------------

    _onListClick(event) {
      const li = event.target.closest("li");
      if (!li) return;
      if (event.target.closest(".dismiss")) this._dismiss(li.dataset.id);
      else if (event.target.closest(".open")) this._open(li.dataset.id);
    }

    _onListKey(event) {
      const buttons = [...this._list.querySelectorAll(".open")];
      const li = event.target.closest("li");
      const index = buttons.indexOf(li && li.querySelector(".open"));
      let target = null;
      if (event.key === "ArrowDown") target = buttons[index + 1];
      else if (event.key === "ArrowUp") target = buttons[index - 1];
      else if (event.key === "Home") target = buttons[0];
      else if (event.key === "End") target = buttons[buttons.length - 1];
      else if (event.key === "Delete" && li) {
        event.preventDefault();
        this._dismiss(li.dataset.id);
        return;
      } else return;
      event.preventDefault();
      if (target) target.focus();
      if (event.key === "ArrowDown" && index === buttons.length - 1) this._loadMore();
    }

    async _open(id) {
      const item = this._items.get(id);
      if (!item) return;
      const button = item.li.querySelector(".open");
      const expanded = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(expanded));
      item.li.querySelector(".text").hidden = !expanded;
      if (item.n.is_read) return;
      this._setRead(id, true);
      this._setUnread(this._unread - 1);
      this._post({ type: "status", ids: [id], status: "READ", unread: this._unread });
      try {
        await this._count(() => this._api(`/api/v1/notifications/${encodeURIComponent(id)}/read`, "POST"));
      } catch (e) {
        if (e.status !== 409) this._fail(e);
      }
    }

    async _dismiss(id) {
      const item = this._items.get(id);
      if (!item) return;
      const wasUnread = !item.n.is_read;
      this._remove(id);
      if (wasUnread) this._setUnread(this._unread - 1);
      this._post({ type: "status", ids: [id], status: "CANCELLED", unread: this._unread });
      try {
        await this._count(() => this._api(`/api/v1/notifications/${encodeURIComponent(id)}/dismiss`, "POST"));
      } catch (e) {
        this._fail(e);
      }
    }

    async _markAllRead() {
      this._applyStatus(null, "READ");
      this._setUnread(0);
      this._post({ type: "status", ids: null, status: "READ", unread: 0 });
      try {
        await this._count(() => this._api("/api/v1/notifications/read-all", "POST"));
      } catch (e) {
        this._fail(e);
      }
    }

    _setFilter(unreadOnly) {
      this._unreadOnly = unreadOnly;
      this._filter.setAttribute("aria-pressed", String(unreadOnly));
      this._reset();
      this._initial = this._loadMore();
    }

    // -- live: WebSocket, polling, other tabs -------------------------------

    async _connect() {
      if (!this._started || this._ws) return;
      clearTimeout(this._reconnectTimer);
      let token;
      try {
        token = await this._getToken(this._tokenStale);
        this._tokenStale = false;
      } catch (e) {
        this._fail(e);
        return this._retry();
      }
      if (!this._started || this._ws) return;
      const url = `${this._apiBase().replace(/^http/, "ws")}/api/v1/ws/connect?token=${encodeURIComponent(token)}`;
      const ws = new WebSocket(url);
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this._attempt = 0;
        this._setConn("live");
        clearInterval(this._pollTimer);
        this._pollTimer = null;
        this._pingTimer = setInterval(() => ws.readyState === 1 && ws.send('{"type":"PING"}'), 25000);
        this._catchUp();
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (message.type === "CREATED_NOTIFICATION" && message.payload) {
          // `silent`: sent inside the user's quiet hours: listed, not announced.
          const added = this._add(message.payload, true, message.silent === true);
          if (added && !message.payload.is_read) this._setUnread(this._unread + 1);
        } else if (message.type === "INBOX_UPDATED") {
          this._applyStatus(message.ids, message.status);
          this._setUnread(message.unread);
        }
      };
      ws.onclose = (event) => {
        clearInterval(this._pingTimer);
        if (this._ws === ws) this._ws = null;
        if (!this._started) return;
        // Refused at the handshake, or closed because the token ended: ask for a new one.
        if (!opened || event.code === 4401) this._tokenStale = true;
        this._setConn("offline");
        this._startPolling();
        this._retry();
      };
    }

    /** Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s. */
    _retry() {
      if (!this._started) return;
      const base = Math.min(30000, 500 * 2 ** this._attempt);
      this._attempt = Math.min(this._attempt + 1, 16);
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = setTimeout(() => this._connect(), base / 2 + Math.random() * (base / 2));
    }

    /** While the socket is down, ask the API for what is new every poll-interval. */
    _startPolling() {
      if (this._pollTimer) return;
      const every = Math.max(1000, parseInt(this.getAttribute("poll-interval"), 10) || 15000);
      this._pollTimer = setInterval(() => this._catchUp(), every);
    }

    _setConn(state) {
      this._connState = state;
      this._conn.textContent = this._s[state] || state;
      this.setAttribute("connection", state);
    }

    _fail(error) {
      if (error && (error.status === 401 || error.status === 403)) {
        // Refused for good (signed out, token provider says no): stop asking.
        // Setting tokenProvider again starts afresh.
        this.stop();
        this._setConn("signedOut");
      } else if (this._connState !== "live") this._setConn("offline");
      this.dispatchEvent(new CustomEvent("notify-inbox:error", { detail: error, bubbles: true }));
    }

    /** Tabs of the same user on this origin hear each other's reads and dismissals at once. */
    _openChannel() {
      if (this._bc) this._bc.close();
      if (typeof BroadcastChannel === "undefined") return;
      this._bc = new BroadcastChannel(`notify-inbox|${this._apiBase()}|${this._who || ""}`);
      this._bc.onmessage = (event) => {
        const m = event.data || {};
        if (m.type !== "status") return;
        this._applyStatus(m.ids, m.status);
        if (typeof m.unread === "number") this._setUnread(m.unread);
      };
    }

    _post(message) {
      if (!this._bc && this._who === null && typeof BroadcastChannel !== "undefined") this._openChannel();
      if (this._bc) this._bc.postMessage(message);
    }
  }

  if (!customElements.get("notify-inbox")) customElements.define("notify-inbox", NotifyInbox);
})();
