// repairdesk console: live refresh. The server's event stream (/console/events) says what changed;
// every element with data-live="<url>" is fetched again from its url and swapped in by htmx. A
// ticket's section (data-ticket-id) only for its own ticket. An element with a form being filled in
// (focused, or changed and not sent) waits until it is sent or left, so nobody loses a choice,
// and a refresh already on its way when someone started is not swapped in.
(function () {
  'use strict';
  var pending = {};
  var all = false;
  var timer = null;

  function busy(el) {
    var a = document.activeElement;
    if (a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    // changed and not sent, or sent and not answered yet (htmx marks it): its answer is newer
    return el.querySelector('form[data-dirty], .htmx-request') !== null;
  }

  function touched(e) {
    var form = e.target && e.target.form;
    if (form && form.method === 'post') form.setAttribute('data-dirty', '1');
  }
  document.addEventListener('input', touched);
  document.addEventListener('change', touched);
  // a form sent is no longer being filled in: what it answers replaces it
  document.addEventListener('submit', function (e) {
    if (e.target && e.target.removeAttribute) e.target.removeAttribute('data-dirty');
  }, true);

  function refresh() {
    timer = null;
    var ids = pending;
    var everything = all;
    pending = {};
    all = false;
    document.querySelectorAll('[data-live]').forEach(function (el) {
      var only = el.getAttribute('data-ticket-id');
      if (only && !everything && !ids[only]) return;
      if (busy(el)) {
        el.setAttribute('data-stale', '1');
        return;
      }
      el.removeAttribute('data-stale');
      htmx.ajax('GET', el.getAttribute('data-live'), { target: '#' + el.id, swap: 'outerHTML' });
    });
  }

  // A refresh asked for before someone started filling in a form of the element can answer after
  // they did: its answer is not swapped in (it would wipe what they typed); the element is
  // fetched again once they send the form or leave it. What a form's own request answers is
  // always swapped in.
  document.addEventListener('htmx:beforeSwap', function (e) {
    var target = e.detail.target;
    var verb = e.detail.requestConfig && e.detail.requestConfig.verb;
    if (verb !== 'get' || !target || !target.hasAttribute('data-live') || !busy(target)) return;
    e.detail.shouldSwap = false;
    target.setAttribute('data-stale', '1');
  });

  function schedule(ticketId) {
    if (ticketId) pending[ticketId] = true; else all = true;
    if (!timer) timer = setTimeout(refresh, 150);
  }

  document.addEventListener('focusout', function () {
    setTimeout(function () {
      document.querySelectorAll('[data-live][data-stale]').forEach(function (el) {
        if (!busy(el)) schedule(el.getAttribute('data-ticket-id') || null);
      });
    }, 0);
  });

  function connect() {
    if (!document.querySelector('[data-live]') || typeof EventSource === 'undefined') return;
    var opened = false;
    var source = new EventSource('/console/events');
    source.addEventListener('open', function () {
      // after a reconnect, whatever happened in between is fetched
      if (opened) schedule(null);
      opened = true;
    });
    source.addEventListener('change', function (e) {
      var data = {};
      try { data = JSON.parse(e.data); } catch (err) { /* a frame we do not know: refresh all */ }
      schedule(data.ticket_id || null);
    });
    source.addEventListener('tick', function () { schedule(null); });
    document.documentElement.setAttribute('data-stream', 'connecting');
    source.addEventListener('open', function () {
      document.documentElement.setAttribute('data-stream', 'open');
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', connect);
  else connect();
})();
