// flywheel review: keyboard-first labelling on top of plain HTML forms (they work without this file).
(function () {
  "use strict";
  const typing = (el) => el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
    (el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type)));
  const keys = document.getElementById("keys");
  const toggleKeys = () => { keys.hidden = !keys.hidden; };
  const showKeys = document.getElementById("show-keys");
  if (showKeys) showKeys.addEventListener("click", toggleKeys);

  // ---- the label form ------------------------------------------------------------------------
  const form = document.getElementById("label-form");
  const page = document.querySelector("[data-page]");
  if (form) {
    const search = document.getElementById("tax-search");
    const items = Array.from(document.querySelectorAll("#codes li"));
    const visible = () => items.filter((li) => !li.hidden);
    const number = () => visible().forEach((li, i) => { li.querySelector("kbd.num").textContent = i < 9 ? String(i + 1) : ""; });
    const sync = () => {
      const bucket = form.querySelector("input[name=bucket]:checked");
      form.dataset.bucket = bucket ? bucket.value : "";
      form.dataset.leak = document.getElementById("pii_leak").checked ? "yes" : "no";
      // Only what the bucket needs is required, so the browser checks the rest before submit.
      const failure = form.dataset.bucket === "known_failure" || form.dataset.bucket === "new_failure";
      document.getElementById("expected_behaviour").required = failure;
      document.getElementById("new_code").required = form.dataset.bucket === "new_failure";
      document.getElementById("pii_issue_class").required = form.dataset.leak === "yes";
    };
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      items.forEach((li) => { li.hidden = q !== "" && !li.dataset.search.includes(q); });
      number();
    });
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); const first = visible()[0]; if (first) pick(first); }
      if (e.key === "Escape") { search.blur(); }
    });
    const pick = (li) => {
      li.querySelector("input").checked = true;
      document.getElementById("expected_behaviour").focus();
    };
    form.addEventListener("change", sync);
    sync(); number();

    // The typed criterion, checked by the server's own rules as the reviewer types (a regex Python
    // cannot compile is refused before submit: the browser will not send an invalid field).
    const kind = document.getElementById("criterion_type");
    const value = document.getElementById("criterion_value");
    const said = document.getElementById("criterion-check");
    let pending = null;
    // Only the answer to the latest question counts. A question is numbered when it is asked, not when
    // its request leaves 150 ms later: an answer still on its way about what the field said before the
    // last keystroke ("needs a value") would otherwise mark the field invalid again, and the browser
    // would silently refuse the Enter that follows.
    let asked = 0;
    const check = () => {
      clearTimeout(pending);
      const mine = ++asked;
      const failure = form.dataset.bucket === "known_failure" || form.dataset.bucket === "new_failure";
      if (!failure) { value.setCustomValidity(""); said.textContent = ""; return; }
      pending = setTimeout(async () => {
        const url = "/api/criterion?" + new URLSearchParams({ type: kind.value, value: value.value });
        try {
          const got = await (await fetch(url, { credentials: "same-origin" })).json();
          if (mine !== asked) return;
          const message = got.ok ? "" : got.errors.map((e) => e.message).join("; ");
          value.setCustomValidity(message);
          said.textContent = message;
        } catch (err) { /* offline: the server checks again on submit */ }
      }, 150);
    };
    // A new keystroke clears the old verdict at once (the server checks on submit too), so a quick Enter
    // is never held back by the answer about what the field said a moment ago.
    const recheck = () => { value.setCustomValidity(""); said.textContent = ""; check(); };
    kind.addEventListener("change", recheck);
    value.addEventListener("input", recheck);
    form.addEventListener("change", check);
    check();

    // The loop's suggestion, taken into the form (bucket, code, expected behaviour, criterion). Nothing is
    // stored until the reviewer submits, and every field stays editable.
    const accept = document.getElementById("accept-suggestion");
    const acceptSuggestion = () => {
      const d = accept.dataset;
      form.querySelector(`input[name=bucket][value="${d.bucket}"]`).checked = true;
      const code = d.code && items.find((li) => li.querySelector("input").value === d.code);
      if (code) code.querySelector("input").checked = true;
      if (d.expected) document.getElementById("expected_behaviour").value = d.expected;
      if (d.criterionType) { kind.value = d.criterionType; value.value = d.criterionValue; }
      sync(); recheck();
    };
    if (accept) accept.addEventListener("click", acceptSuggestion);

    const bucketKeys = { k: "known_failure", n: "new_failure", o: "not_a_bug" };
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "Escape") { if (!keys.hidden) keys.hidden = true; else if (document.activeElement) document.activeElement.blur(); return; }
      if (typing(document.activeElement)) return;
      if (e.key === "?") { toggleKeys(); return; }
      if (bucketKeys[e.key]) {
        e.preventDefault();
        form.querySelector(`input[name=bucket][value=${bucketKeys[e.key]}]`).checked = true;
        sync(); check();
        if (e.key === "n") document.getElementById("new_code").focus();
        return;
      }
      if (/^[1-9]$/.test(e.key) && form.dataset.bucket === "known_failure") {
        const li = visible()[Number(e.key) - 1];
        if (li) { e.preventDefault(); pick(li); }
        return;
      }
      if (e.key === "/") { e.preventDefault(); if (form.dataset.bucket !== "known_failure") { form.querySelector("input[value=known_failure]").checked = true; sync(); } search.focus(); return; }
      // `a` accepts, as in the terminal review and on the siblings page; adversarial is `x`.
      if (e.key === "a") { if (accept) { e.preventDefault(); acceptSuggestion(); } return; }
      if (e.key === "x") { e.preventDefault(); const box = document.getElementById("adversarial"); box.checked = !box.checked; return; }
      if (e.key === "p") { e.preventDefault(); const box = document.getElementById("pii_leak"); box.checked = !box.checked; sync(); if (box.checked) document.getElementById("pii_issue_class").focus(); return; }
      if (e.key === "s") { e.preventDefault(); document.getElementById("skip-form").submit(); return; }
      if (e.key === "b") { e.preventDefault(); const back = document.getElementById("back"); if (back) window.location = back.href; else history.back(); return; }
      if (e.key === "Enter") { e.preventDefault(); form.requestSubmit(); }
    });
    const firstError = document.querySelector(".label-form .field-error");
    if (firstError) firstError.scrollIntoView({ block: "center" });
  }

  // ---- siblings ---------------------------------------------------------------------------------
  const siblingsForm = document.getElementById("siblings-form");
  if (siblingsForm) {
    const cards = Array.from(siblingsForm.querySelectorAll(".sibling"));
    let at = 0;
    const focus = (i) => { cards.forEach((c, j) => c.classList.toggle("current", j === i)); at = i; if (cards[i]) cards[i].scrollIntoView({ block: "nearest" }); };
    const decide = (i, choice) => {
      const card = cards[i]; if (!card) return;
      card.querySelector("input[type=hidden]").value = choice;
      card.classList.toggle("accepted", choice === "accept");
      card.classList.toggle("rejected", choice === "reject");
      card.querySelector(".decision").textContent = choice === "accept" ? "accepted" : "rejected";
      if (i + 1 < cards.length) focus(i + 1);
    };
    cards.forEach((card, i) => {
      card.querySelector(".accept").addEventListener("click", () => decide(i, "accept"));
      card.querySelector(".reject").addEventListener("click", () => decide(i, "reject"));
    });
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(document.activeElement)) return;
      if (e.key === "?") { toggleKeys(); return; }
      if (e.key === "a") { e.preventDefault(); decide(at, "accept"); }
      else if (e.key === "r") { e.preventDefault(); decide(at, "reject"); }
      else if (e.key === "Enter") { e.preventDefault(); siblingsForm.requestSubmit(); }
    });
  }

  // ---- the queue ----------------------------------------------------------------------------------
  const start = document.getElementById("start");
  if (start && !form) {
    document.addEventListener("keydown", (e) => {
      if (typing(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "?") { toggleKeys(); return; }
      if (e.key === "Enter" && document.activeElement === document.body) { e.preventDefault(); window.location = start.href; }
    });
  } else if (!form && !siblingsForm) {
    document.addEventListener("keydown", (e) => { if (e.key === "?" && !typing(document.activeElement)) toggleKeys(); });
  }
})();
