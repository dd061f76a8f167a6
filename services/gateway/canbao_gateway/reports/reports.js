// The analyst's page (统计分析): the quarterly basic-data table of domain.md §6 for the account's
// region with its logical checks, the people behind each number, the table as a file, and
// coverage against the goals of domain.md §1 as a chart. It speaks only the public API (api.md
// "Reports") and builds the page with textContent, never with HTML from the server. The token
// lives in sessionStorage: gone when the tab closes.
"use strict";

const LABELS = JSON.parse(document.getElementById("labels").textContent);
const TOKEN_KEY = "canbao.reports.token";
const ANALYST = "analyst";
const TOTAL = "total";
// Quarters run in China Standard Time, as reporting counts them (UTC+8, no daylight saving).
const CHINA_OFFSET_MS = 8 * 3600 * 1000;
const NUMBER = new Intl.NumberFormat("zh-CN");
const FONT = '"Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif';
// The chart's series: bar colour, and which answer field holds the rate and its two counts.
const SERIES = [
  { key: "pension", label: "养老保险参保率", color: "#0b5cad", counts: ["insured", "should"],
    words: ["参保", "应参保"] },
  { key: "medical", label: "医疗保险参保率", color: "#1a7f37", counts: ["insured", "should"],
    words: ["参保", "应参保"] },
  { key: "survey", label: "调查率", color: "#9a6700", counts: ["verified", "needing"],
    words: ["已调查核实", "需调查核实"] },
];
const BAR_GAP = 0.2; // the chart's bargap: each bar is (1 - BAR_GAP) / 3 of a city's width

const $ = (id) => document.getElementById(id);
let me = null; // {username, role, scope}
let table = null; // the quarterly table shown: GET /reports/quarterly/{quarter}
// The people panel: {path (their pages' path and query but the cursor), csv (the list as a
// file: {path, name}) or null, items, next, count}.
let people = null;
let returnFocus = null; // the selector of the number that opened the people panel
let listsAsked = 0;
let employersAsked = 0;
let tableAsked = 0; // the latest table asked for: an older answer is dropped
let coverageAsked = 0;
let filingAsked = 0;
let targetsAsked = 0;
let targetEntries = []; // the year's targets within the account's region, as last answered
// A filing's states (api.md "Reports"): filed, open (not yet, not due), overdue.
const FILING_STATES = { filed: "已报送", open: "未报送", overdue: "逾期未报送" };

// -- Talking to the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || String(status));
    this.status = status;
    this.problem = problem;
  }
}

// The Chinese half of a problem's "中文 (English)" text.
function chinese(text) {
  return (text || "").split(" (")[0];
}

// A problem+json answer as one readable Chinese sentence.
function problemMessage(error) {
  if (!(error instanceof ApiError)) return "无法连接服务，请检查网络后重试";
  const p = error.problem;
  // A route this gateway does not have (yet): its generic not-found, not a problem of the query.
  if (error.status === 404 && (!p.type || p.type.endsWith("/not-found"))) {
    return "服务暂不提供此项查询（404）";
  }
  let text = chinese(p.title) || `请求失败（${error.status}）`;
  if (p.detail) text += "：" + chinese(p.detail);
  return text;
}

function authorised(headers = {}) {
  const init = { Accept: "application/json", ...headers };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) init.Authorization = "Bearer " + token;
  return init;
}

async function send(method, path, { form, json, headers } = {}) {
  const init = { method, headers: authorised(headers) };
  if (form) init.body = new URLSearchParams(form);
  if (json) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  try {
    return await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: "无法连接服务，请检查网络后重试" });
  }
}

async function failure(response, form) {
  const data = await response.json().catch(() => ({ title: `服务返回了错误（${response.status}）` }));
  if (response.status === 401 && !form) signedOut("登录已过期，请重新登录");
  return new ApiError(response.status, data);
}

async function api(method, path, options = {}) {
  const response = await send(method, path, options);
  if (!response.ok) throw await failure(response, options.form);
  return response.json().catch(() => ({}));
}

// The name a file is sent under: RFC 6266's filename* (UTF-8, the table's Chinese name) first.
function fileName(disposition, fallback) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1]);
    } catch (e) {
      return fallback;
    }
  }
  const plain = /filename="?([^";]+)"?/.exec(disposition);
  return plain ? plain[1] : fallback;
}

// A file behind the token: fetched, then saved from a blob, since a plain link could not carry
// the Authorization header.
async function download(path, fallbackName, button, message) {
  button.disabled = true;
  say(message, "正在生成文件…", "busy");
  try {
    const response = await send("GET", path, { headers: { Accept: "*/*" } });
    if (!response.ok) throw await failure(response);
    const blob = await response.blob();
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = fileName(response.headers.get("Content-Disposition") || "", fallbackName);
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    say(message, `已下载 ${link.download}`, "ok");
  } catch (error) {
    say(message, "下载失败：" + problemMessage(error));
  } finally {
    enable(button);
  }
}

// -- Small helpers ------------------------------------------------------------------------------

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, className, label) {
  const node = element("button", text, className);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  return node;
}

// A button back in use after its request; it takes the focus back if disabling it lost it.
function enable(control) {
  control.disabled = false;
  if (!control.hidden && document.activeElement === document.body) control.focus();
}

function say(node, text, kind = "") {
  node.className = "message" + (node.id === "message" ? " banner" : "") + (kind ? " " + kind : "");
  node.textContent = text;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const text = search.toString();
  return text ? "?" + text : "";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false }) : "—";
}

function percent(rate) {
  return rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + "%";
}

function scopeText(scope) {
  const kind = LABELS.scope_kinds[String(scope.length)];
  return kind ? `${scope}（${kind}）` : scope;
}

// -- Quarters -----------------------------------------------------------------------------------

function currentQuarter() {
  const china = new Date(Date.now() + CHINA_OFFSET_MS);
  return `${china.getUTCFullYear()}Q${Math.floor(china.getUTCMonth() / 3) + 1}`;
}

// The current quarter, then the earlier ones of this year and all of last year.
function quarters() {
  const [year, number] = currentQuarter().split("Q").map(Number);
  const list = [];
  for (let y = year, n = number; y >= year - 1; n -= 1) {
    if (n === 0) {
      y -= 1;
      n = 4;
      if (y < year - 1) break;
    }
    list.push(`${y}Q${n}`);
  }
  return list;
}

function quarterText(quarter, provisional) {
  const [year, number] = quarter.split("Q");
  return `${year}年第${number}季度` + (provisional ? "（临时）" : "");
}

function fillQuarters() {
  const select = $("quarter");
  const current = currentQuarter();
  select.replaceChildren(...quarters().map((quarter) => {
    const option = element("option", quarterText(quarter, quarter === current));
    option.value = quarter;
    return option;
  }));
  select.value = current;
}

// -- Login --------------------------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  const message = $("login-message");
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    message.textContent = "请输入用户名和密码";
    (username ? $("password") : $("username")).focus();
    return;
  }
  message.textContent = "";
  try {
    const answer = await api("POST", "/api/v1/auth/token", { form: { username, password } });
    sessionStorage.setItem(TOKEN_KEY, answer.access_token);
    $("password").value = "";
    await signedIn();
  } catch (error) {
    message.textContent = problemMessage(error);
    $("password").select();
    $("password").focus();
  }
}

async function signedIn() {
  const who = await api("GET", "/api/v1/auth/me");
  if (who.role !== ANALYST) {
    const role = LABELS.roles[who.role] || who.role;
    signedOut(`${who.username}（${role}）无统计分析权限：本页面供统计分析人员查看报表使用`);
    return;
  }
  me = who;
  $("who-name").textContent = `${me.username}（${LABELS.roles[me.role]}，辖区 ${me.scope}）`;
  $("who").hidden = false;
  $("login-view").hidden = true;
  $("work-view").hidden = false;
  say($("message"), "");
  closePeople();
  fillQuarters();
  $("target-year").value = String(chinaYear());
  fillTargetRegions([]);
  $("quarter").focus();
  await Promise.all([loadTable(), loadTargets()]);
}

function signedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  table = null;
  tableAsked += 1;
  coverageAsked += 1;
  filingAsked += 1;
  listsAsked += 1;
  employersAsked += 1;
  targetsAsked += 1;
  targetEntries = [];
  $("targets").hidden = true;
  say($("targets-message"), "");
  $("filing-view").hidden = true;
  $("who").hidden = true;
  $("work-view").hidden = true;
  closePeople();
  $("login-view").hidden = false;
  $("login-message").textContent = message || "";
  // An analyst's workstation may be shared: the next one starts from an empty form.
  $("username").value = "";
  $("password").value = "";
  $("username").focus();
}

// -- The quarterly table (domain.md §6) ---------------------------------------------------------

async function showQuarter(event) {
  event.preventDefault();
  await loadTable();
}

// The table of the quarter chosen, and coverage as of the same quarter beside it.
async function loadTable() {
  const quarter = $("quarter").value;
  const asked = ++tableAsked;
  closePeople();
  say($("message"), "正在查询…", "busy");
  const coverage = loadCoverage(quarter);
  const lists = loadLists(quarter);
  const employers = loadEmployers(quarter);
  try {
    const body = await api("GET", `/api/v1/reports/quarterly/${encodeURIComponent(quarter)}`);
    if (asked !== tableAsked) return;
    showTable(body);
    loadFiling(body);
    const failed = body.checks.filter((c) => !c.passed).length;
    say($("message"), `已查询${quarterText(body.quarter, body.provisional)}报表，` +
      (failed ? `逻辑校验未通过 ${failed} 项` : "逻辑校验全部通过"), failed ? "warn" : "ok");
  } catch (error) {
    if (asked !== tableAsked) return;
    table = null;
    filingAsked += 1;
    $("filing-view").hidden = true;
    $("quarterly").hidden = true;
    $("checks").hidden = true;
    $("passed-checks").hidden = true;
    $("table-state").replaceChildren();
    $("checks-summary").textContent = "";
    say($("message"), "查询失败：" + problemMessage(error));
  }
  await Promise.all([coverage, lists, employers]);
}

function rowName(row) {
  return row.city === TOTAL ? "合计" : (row.name || row.city);
}

function cityName(city) {
  const row = table && table.rows.find((r) => r.city === city);
  return row ? rowName(row) : city;
}

// The form's columns a check names: "(1) = (3) − (4) + …" → 1, 3, 4, …; "(5)" of a total check.
function checkedColumns(rule) {
  return [...rule.matchAll(/\((\d+)\)/g)].map((m) => m[1]);
}

function showTable(body) {
  table = body;
  const option = $("quarter").querySelector(`option[value="${body.quarter}"]`);
  if (option) option.textContent = quarterText(body.quarter, body.provisional);

  const badges = $("table-state");
  badges.replaceChildren(element("span", quarterText(body.quarter, false), "quarter"));
  badges.append(body.provisional
    ? element("span", `临时数据：季度未结束，数据截至 ${when(body.as_of)}`, "provisional")
    : element("span", `季度已结束，数据截至 ${when(body.as_of)}，不再变化`, "final"));
  badges.append(element("span", "辖区 " + scopeText(me.scope)));
  $("table-caption").textContent =
    `全民参保登记基础数据情况表　${quarterText(body.quarter, body.provisional)}　辖区 ${me.scope}`;

  const head = $("quarterly").tHead;
  const groups = element("tr");
  const corner = element("th", "地市");
  corner.rowSpan = 2;
  corner.scope = "col";
  groups.append(corner);
  const names = element("tr");
  for (const group of LABELS.groups) {
    const cell = element("th", group.label, "group");
    cell.colSpan = group.columns.length;
    cell.scope = "colgroup";
    groups.append(cell);
    for (const column of group.columns) {
      const name = element("th", null, "column");
      name.scope = "col";
      name.append(element("span", LABELS.columns[column]), element("small", `(${column})`));
      names.append(name);
    }
  }
  head.replaceChildren(groups, names);

  const failures = new Map(); // city → column → the failed rules naming it
  for (const check of body.checks.filter((c) => !c.passed)) {
    if (!failures.has(check.city)) failures.set(check.city, new Map());
    for (const column of checkedColumns(check.rule)) {
      const rules = failures.get(check.city);
      rules.set(column, [...(rules.get(column) || []), check.rule]);
    }
  }
  const rows = $("quarterly").tBodies[0];
  rows.replaceChildren(...body.rows.map((row) => tableRow(row, failures.get(row.city))));
  $("quarterly").hidden = false;
  showChecks(body.checks);
}

function tableRow(row, failed) {
  const line = element("tr", null, row.city === TOTAL ? "total" : "");
  line.dataset.city = row.city;
  const head = element("th", null, "city");
  head.scope = "row";
  const name = rowName(row);
  head.append(element("span", name));
  if (row.city !== TOTAL && name !== row.city) head.append(element("small", row.city));
  line.append(head);
  for (const group of LABELS.groups) {
    for (const column of group.columns.map(String)) {
      const value = row.columns[column] || 0;
      const cell = element("td", null, "number");
      cell.dataset.column = column;
      if (value > 0) {
        const open = button(NUMBER.format(value), "cell",
          `${name} ${LABELS.columns[column]} ${NUMBER.format(value)} 人，查看人员明细`);
        open.dataset.city = row.city;
        open.dataset.column = column;
        open.addEventListener("click", () => openPeople(row.city, column));
        cell.append(open);
      } else {
        cell.textContent = "0";
      }
      const rules = failed && failed.get(column);
      if (rules) {
        cell.classList.add("check-failed");
        cell.title = "逻辑校验未通过：" + rules.join("；");
      }
      line.append(cell);
    }
  }
  return line;
}

// What failed, in a table of its own; what passed, folded away below it.
function showChecks(checks) {
  const failed = checks.filter((c) => !c.passed);
  const passed = checks.filter((c) => c.passed);
  $("checks-summary").textContent = failed.length
    ? `共 ${checks.length} 项校验，未通过 ${failed.length} 项`
    : `共 ${checks.length} 项校验，全部通过`;
  $("checks-summary").className = "progress " + (failed.length ? "failed" : "passed");
  const rows = (list) => list.map((check) => {
    const row = element("tr", null, check.passed ? "passed" : "failed");
    row.append(element("td", check.rule), element("td", cityName(check.city)),
      element("td", check.passed ? "通过" : "未通过", "result"));
    return row;
  });
  $("checks").tBodies[0].replaceChildren(...rows(failed));
  $("checks").hidden = failed.length === 0;
  $("passed").tBodies[0].replaceChildren(...rows(passed));
  $("passed-summary").textContent = `已通过的校验（${passed.length} 项）`;
  $("passed-checks").hidden = passed.length === 0;
}

function downloadTable(format, control) {
  if (!table || !me) {
    say($("message"), "请先查询报表");
    return;
  }
  const quarter = table.quarter;
  download(`/api/v1/reports/quarterly/${encodeURIComponent(quarter)}?format=${format}`,
    `全民参保登记基础数据情况表-${quarter}-${me.scope}.${format}`, control, $("message"));
}

// -- Filing (报送, domain.md §6) -------------------------------------------------------------------

// China's calendar date today, as a date input wants it (YYYY-MM-DD).
function chinaToday() {
  return new Date(Date.now() + CHINA_OFFSET_MS).toISOString().slice(0, 10);
}

function dateText(iso) {
  const [year, month, day] = iso.split("-").map(Number);
  return `${year}年${month}月${day}日`;
}

// Where the filing of a past quarter stands; the province and the cities file, a county does
// not, and a provisional quarter cannot be filed yet: then nothing is shown.
async function loadFiling(body) {
  const asked = ++filingAsked;
  const view = $("filing-view");
  if (body.provisional || !me || ![2, 4].includes(me.scope.length)) {
    view.hidden = true;
    return;
  }
  say($("filing-message"), "正在查询报送情况…", "busy");
  $("filing-form").hidden = true;
  $("filing-done").hidden = true;
  $("filing-cities").hidden = true;
  $("filing-state").textContent = "";
  $("filing-due").textContent = "";
  view.hidden = false;
  try {
    const state = await api("GET",
      `/api/v1/reports/quarterly/${encodeURIComponent(body.quarter)}/filing`);
    if (asked !== filingAsked) return;
    showFiling(state, body);
    say($("filing-message"), "");
  } catch (error) {
    if (asked !== filingAsked) return;
    say($("filing-message"), "报送情况暂无法查询：" + problemMessage(error));
  }
}

function showFiling(state, body) {
  const title = $("filing-state");
  title.textContent = `${quarterText(state.quarter, false)}　辖区 ${scopeText(state.region)}：` +
    FILING_STATES[state.state];
  title.className = "progress " + state.state;
  $("filing-due").textContent = `报送截止日期：${dateText(state.due)}（季度结束后次月25日）`;

  const filing = state.filing;
  $("filing-done").hidden = !filing;
  if (filing) {
    $("filing-who").textContent = `${when(filing.filed_at)} 由 ${filing.filed_by} 报送` +
      (filing.late ? "（逾期报送）" : "");
    const signed = filing.signatures;
    const terms = [["填表人", signed.filled_by], ["处(科)负责人", signed.section_head],
      ["单位负责人", signed.unit_head], ["报出日期", dateText(signed.report_date)],
      ["相关情况说明", signed.note || "—"]];
    $("filing-signatures").replaceChildren(...terms.flatMap(([term, value]) =>
      [element("dt", term), element("dd", value)]));
  }

  const form = $("filing-form");
  form.hidden = Boolean(filing);
  if (!filing) {
    form.reset();
    $("report-date").value = chinaToday();
  }
  const failed = body.checks.filter((c) => !c.passed).length;
  const note = $("filing-note");
  note.required = failed > 0;
  $("filing-note-hint").textContent = failed
    ? `逻辑校验未通过 ${failed} 项：必须填写相关情况说明，说明原因`
    : "逻辑校验全部通过；如有需要说明的情况请填写（选填）";
  $("filing-note-hint").className = "hint" + (failed ? " required" : "");

  const cities = $("filing-cities");
  cities.tBodies[0].replaceChildren(...state.cities.map((city) => {
    const row = element("tr");
    row.dataset.region = city.region;
    const name = cityName(city.region);
    const head = element("th", name);
    head.scope = "row";
    if (name !== city.region) head.append(element("small", city.region));
    row.append(head, element("td", FILING_STATES[city.state], city.state),
      element("td", city.filed_at ? when(city.filed_at) : "—"));
    return row;
  }));
  cities.hidden = state.cities.length === 0;
}

// A refused filing, said in Chinese: the failed checks named when the note is missing.
function filingProblem(error) {
  if (!(error instanceof ApiError)) return problemMessage(error);
  const p = error.problem;
  const type = (p.type || "").split("/").pop();
  if (type === "checks-unexplained") {
    const failed = Array.isArray(p.failed) ? p.failed : [];
    return chinese(p.title) + (failed.length ? "（未通过：" + failed.map((f) => {
      const [city, ...rule] = f.split(" ");
      return `${cityName(city)} ${rule.join(" ")}`;
    }).join("；") + "）" : "");
  }
  if (type === "already-filed") return chinese(p.title) + "：已报送的报表不能更改";
  if (error.status === 422 && Array.isArray(p.errors)) return "填写内容有误：" + chinese(p.title);
  return problemMessage(error);
}

async function fileTable(event) {
  event.preventDefault();
  if (!table || table.provisional) return;
  const message = $("filing-message");
  const fields = [["filled-by", "填表人"], ["section-head", "处(科)负责人"],
    ["unit-head", "单位负责人"], ["report-date", "报出日期"]];
  const missing = fields.filter(([id]) => !$(id).value.trim());
  if (missing.length) {
    say(message, "请填写" + missing.map(([, label]) => label).join("、"));
    $(missing[0][0]).focus();
    return;
  }
  const quarter = table.quarter;
  const submit = $("filing-submit");
  submit.disabled = true;
  say(message, "正在报送…", "busy");
  try {
    await api("POST", `/api/v1/reports/quarterly/${encodeURIComponent(quarter)}/filing`, {
      json: {
        filled_by: $("filled-by").value.trim(),
        section_head: $("section-head").value.trim(),
        unit_head: $("unit-head").value.trim(),
        report_date: $("report-date").value,
        note: $("filing-note").value.trim(),
      },
    });
    if (!table || table.quarter !== quarter) return;
    await loadFiling(table);
    say(message, `已报送${quarterText(quarter, false)}报表`, "ok");
    $("filing-pdf").focus();
  } catch (error) {
    say(message, "报送失败：" + filingProblem(error));
    if (error instanceof ApiError && (error.problem.type || "").endsWith("/checks-unexplained")) {
      $("filing-note").focus();
    }
  } finally {
    enable(submit);
  }
}

function downloadFiled(format, control) {
  if (!table || !me) return;
  const quarter = table.quarter;
  download(`/api/v1/reports/quarterly/${encodeURIComponent(quarter)}/filing?format=${format}`,
    `全民参保登记基础数据情况表-${quarter}-${me.scope}-报送.${format}`, control, $("filing-message"));
}

// -- The people behind a number (报表及对应人员明细) ----------------------------------------------

function openPeople(city, column) {
  if (!table) return;
  return openPanel(`人员明细：${cityName(city)}` +
    `${city === TOTAL || cityName(city) === city ? "" : "（" + city + "）"}` +
    `　(${column}) ${LABELS.columns[column]}　${quarterText(table.quarter, table.provisional)}`, {
    path: `/api/v1/reports/quarterly/${encodeURIComponent(table.quarter)}/people` +
      query({ city, column }),
    csv: null,
    returnTo: `button.cell[data-city="${city}"][data-column="${column}"]`,
  });
}

// The people panel, for a number of the table or of the plans' lists.
async function openPanel(title, { path, csv, returnTo }) {
  people = { path, csv, items: [], next: null, count: null };
  returnFocus = returnTo;
  $("people-title").textContent = title;
  $("people-csv").hidden = !csv;
  $("people").tBodies[0].replaceChildren();
  $("people").hidden = true;
  $("people-more").hidden = true;
  $("people-summary").textContent = "";
  $("people-view").hidden = false;
  $("people-title").focus();
  await loadPeople(false);
}

async function loadPeople(more) {
  const target = people;
  if (!target) return false;
  const control = $("people-more");
  control.disabled = true;
  say($("people-message"), "正在查询…", "busy");
  try {
    const cursor = more ? "cursor=" + encodeURIComponent(target.next) : "";
    const page = await api("GET",
      target.path + (cursor ? (target.path.includes("?") ? "&" : "?") + cursor : ""));
    if (people !== target) return false;
    target.items.push(...page.people);
    target.next = page.next_cursor;
    target.count = page.count;
    showPeople(page);
    say($("people-message"), "");
    return true;
  } catch (error) {
    if (people !== target) return false;
    say($("people-message"), "无法读取人员明细：" + problemMessage(error));
    return false;
  } finally {
    enable(control);
  }
}

async function loadMorePeople() {
  if (!people || !people.next) return;
  const before = people.items.length;
  if (await loadPeople(true)) {
    // The first person of the new page takes the focus, so the keyboard goes on from there.
    const row = $("people").tBodies[0].rows[before];
    if (row) {
      row.tabIndex = -1;
      row.focus();
    } else {
      $("people-more").focus();
    }
  }
}

function statusText(code) {
  return code ? `${code} ${LABELS.statuses[code] || ""}`.trim() : "—";
}

function showPeople(page) {
  const shown = people.items.length;
  $("people-summary").textContent = `共 ${NUMBER.format(page.count)} 人，已显示 ${NUMBER.format(shown)} 人` +
    (page.provisional ? `（临时数据，截至 ${when(page.as_of)}）` : "");
  const rows = $("people").tBodies[0];
  const fresh = people.items.slice(rows.rows.length).map((person) => {
    const row = element("tr");
    row.dataset.personId = person.person_id;
    row.append(element("td", person.name || "（姓名未登记）"),
      element("td", person.id_number || "—", "number"),
      element("td", LABELS.genders[person.gender] || "—"),
      element("td", person.birth_year ? String(person.birth_year) : "—", "number"),
      element("td", person.region_code || "—", "number"),
      element("td", LABELS.registration[person.registration] || person.registration || "—"),
      element("td", (person.survey_reasons || []).map((r) => LABELS.survey_reasons[r] || r)
        .join("、") || "—"));
    for (const insurance of LABELS.insurances) {
      const code = person.statuses ? person.statuses[insurance.key] : null;
      const uninsured = code && code.startsWith("9") && code !== "95";
      row.append(element("td", statusText(code), uninsured ? "uninsured" : ""));
    }
    return row;
  });
  rows.append(...fresh);
  $("people").hidden = shown === 0;
  $("people-more").hidden = !people.next;
  if (shown === 0) say($("people-message"), "没有对应人员", "ok");
}

function closePeople() {
  $("people-view").hidden = true;
  people = null;
}

function closeAndReturn() {
  closePeople();
  const target = returnFocus && document.querySelector(returnFocus);
  returnFocus = null;
  (target || $("quarter")).focus();
}

function peopleHeader() {
  const head = $("people").tHead.rows[0];
  for (const insurance of LABELS.insurances) {
    const cell = element("th", insurance.label);
    cell.scope = "col";
    head.append(cell);
  }
}

function downloadList(control) {
  if (!people || !people.csv) return;
  download(people.csv.path, people.csv.name, control, $("people-message"));
}

// -- The plans' lists (参保名单, 44号 Art.29-30) --------------------------------------------------

async function loadLists(quarter) {
  const asked = ++listsAsked;
  const state = $("lists-state");
  state.textContent = "正在查询参保名单…";
  try {
    const body = await api("GET", "/api/v1/reports/lists" + query({ quarter }));
    if (asked !== listsAsked) return;
    showLists(body);
    state.textContent = `${quarterText(body.quarter, body.provisional)}，` +
      `数据截至 ${when(body.as_of)}，辖区 ${scopeText(body.region)}`;
  } catch (error) {
    if (asked !== listsAsked) return;
    $("lists").hidden = true;
    state.textContent = "参保名单暂无法查询：" + problemMessage(error);
  }
}

function showLists(body) {
  const divisions = [...new Set(body.lists.flatMap((l) => Object.keys(l.divisions)))].sort();
  const head = element("tr");
  const corner = element("th", "名单");
  corner.scope = "col";
  head.append(corner);
  for (const division of divisions) {
    const cell = element("th", cityName(division));
    cell.scope = "col";
    if (cityName(division) !== division) cell.append(element("small", division));
    head.append(cell);
  }
  const total = element("th", "合计");
  total.scope = "col";
  head.append(total);
  $("lists").tHead.replaceChildren(head);
  $("lists").tBodies[0].replaceChildren(...body.lists.map((list) => {
    const row = element("tr");
    row.dataset.list = list.name;
    const name = element("th", list.label);
    name.scope = "row";
    row.append(name);
    const counts = [...divisions.map((d) => [d, list.divisions[d] || 0]),
      [body.region, list.total]];
    for (const [division, count] of counts) {
      const cell = element("td", null, "number");
      cell.dataset.region = division;
      if (count > 0) {
        const where = division === body.region ? "合计" : cityName(division);
        const open = button(NUMBER.format(count), "cell",
          `${list.label} ${where} ${NUMBER.format(count)} 人，查看名单`);
        open.dataset.list = list.name;
        open.dataset.region = division;
        open.addEventListener("click", () => openList(body, list, division));
        cell.append(open);
      } else {
        cell.textContent = "0";
      }
      row.append(cell);
    }
    return row;
  }));
  $("lists").hidden = body.lists.length === 0;
}

function openList(body, list, division) {
  const where = division === body.region ? `合计（辖区 ${division}）` : cityName(division) +
    (cityName(division) === division ? "" : `（${division}）`);
  const base = `/api/v1/reports/lists/${encodeURIComponent(list.name)}`;
  const params = { region: division, quarter: body.quarter };
  return openPanel(`参保名单：${list.label}　${where}　${quarterText(body.quarter, body.provisional)}`, {
    path: base + query(params),
    csv: { path: base + query({ ...params, format: "csv" }), name: `${list.label}-${division}.csv` },
    returnTo: `#lists button.cell[data-list="${list.name}"][data-region="${division}"]`,
  });
}

// -- Employers leaving employees out (应参保未参保单位, code 92), for labour inspection ---------

async function loadEmployers(quarter) {
  const asked = ++employersAsked;
  const state = $("employers-state");
  state.textContent = "正在查询应参保未参保单位…";
  try {
    const body = await api("GET", "/api/v1/reports/employers" + query({ quarter }));
    if (asked !== employersAsked) return;
    showEmployers(body);
    const shown = body.employers.length;
    state.textContent = `${quarterText(body.quarter, body.provisional)}，` +
      `数据截至 ${when(body.as_of)}，辖区 ${scopeText(body.region)}，` +
      `共 ${NUMBER.format(body.units)} 个单位` +
      (body.units > shown ? `，显示人数最多的 ${NUMBER.format(shown)} 个` : "");
  } catch (error) {
    if (asked !== employersAsked) return;
    $("employers").hidden = true;
    state.textContent = "应参保未参保单位暂无法查询：" + problemMessage(error);
  }
}

// A unit by its name (AAB004, as the core system registers it) where known, else its number.
function unitText(unit) {
  return unit.name ? `${unit.name}（${unit.unit_id}）` : unit.unit_id;
}

function showEmployers(body) {
  $("employers").tBodies[0].replaceChildren(...body.employers.map((unit) => {
    const row = element("tr");
    row.dataset.unit = unit.unit_id;
    const id = element("th", unit.unit_id, "code");
    id.scope = "row";
    const open = button(NUMBER.format(unit.people), "cell",
      `${unitText(unit)} 应参保未参保职工 ${NUMBER.format(unit.people)} 人，查看名单`);
    open.dataset.unit = unit.unit_id;
    open.addEventListener("click", () => openEmployer(body, unit, open));
    const people = element("td", null, "number");
    people.append(open);
    row.append(id, element("td", unit.name || "（名称未知）"),
      element("td", unit.credit_code || "—", "code"), people,
      ...LABELS.insurances.map((insurance) =>
        element("td", NUMBER.format(unit.insurances[insurance.key] || 0), "number")));
    return row;
  }));
  $("employers").hidden = body.employers.length === 0;
}

function openEmployer(body, unit, control) {
  control.id = control.id || `employer-${body.employers.indexOf(unit)}`;
  return openPanel(`应参保未参保职工：${unitText(unit)}　` +
    quarterText(body.quarter, body.provisional), {
    path: `/api/v1/reports/employers/${encodeURIComponent(unit.unit_id)}` +
      query({ quarter: body.quarter }),
    csv: null,
    returnTo: "#" + control.id,
  });
}

function employersHeader() {
  const head = $("employers").tHead.rows[0];
  for (const insurance of LABELS.insurances) {
    const cell = element("th", `其中：${insurance.label}`);
    cell.scope = "col";
    head.append(cell);
  }
}

// -- Coverage against the goals (domain.md §1) --------------------------------------------------

async function loadCoverage(quarter) {
  const asked = ++coverageAsked;
  const state = $("coverage-state");
  state.textContent = "正在查询参保覆盖情况…";
  try {
    const body = await api("GET", "/api/v1/reports/coverage" +
      query({ region: me.scope, quarter }));
    if (asked !== coverageAsked) return;
    const divisions = coverageRows(body);
    showCoverageTable(divisions);
    fillTargetRegions(body.divisions);
    state.textContent = `${quarterText(body.quarter || quarter, body.provisional)}，` +
      `数据截至 ${when(body.as_of)}，辖区 ${scopeText(me.scope)}` +
      (divisions.length ? "" : "：暂无数据");
    // Shown before it is drawn: plotly.js sizes the chart to its container.
    $("coverage-shown").hidden = divisions.length === 0;
    if (divisions.length) await drawCoverage(divisions);
  } catch (error) {
    if (asked !== coverageAsked) return;
    $("coverage-shown").hidden = true;
    state.textContent = "参保覆盖情况暂无法查询：" + problemMessage(error);
  }
}

// Each city of the answer, then the total when there is more than one city.
function coverageRows(body) {
  const rows = body.divisions.map((d) => ({ ...d, label: d.name || d.region }));
  if (rows.length > 1 && body.total) rows.push({ ...body.total, region: TOTAL, label: "合计" });
  return rows;
}

function seriesOf(row, key) {
  return key === "survey" ? row.survey : row.insurances[key];
}

// The documents' goal (domain.md §1), as the answer gives it; the survey's from the page's
// labels when an answer has none.
function goalOf(row, key) {
  const series = seriesOf(row, key);
  if (!series) return null;
  return series.goal ?? (key === "survey" ? LABELS.survey_goal : null);
}

// A rate with its two counts; below the goal marked, the year's target (年度扩面计划) said.
function rateCell(part, counts, goal) {
  if (!part) return element("td", "—");
  const text = `${percent(part.rate)}（${NUMBER.format(part[counts[0]])} / ${NUMBER.format(part[counts[1]])}）`;
  const below = goal !== undefined && goal !== null && part.rate !== null && part.rate < goal;
  const cell = element("td", text, "number " + (below ? "below-goal" : ""));
  // A target of the year's plan other than the documents' goal, shown beside the rate.
  if (goal !== undefined && goal !== null && part.target !== undefined && part.target !== goal) {
    cell.append(element("small", `计划 ${percent(part.target)}`));
  }
  if (goal !== undefined && goal !== null) {
    const target = part.target !== undefined && part.target !== null
      ? `，年度计划 ${percent(part.target)}` : "";
    cell.title = (below ? "未达到目标 " : "已达到目标 ") + percent(goal) + target;
  }
  return cell;
}

function showCoverageTable(rows) {
  const body = $("coverage").tBodies[0];
  body.replaceChildren(...rows.map((row) => {
    const line = element("tr", null, row.region === TOTAL ? "total" : "");
    line.dataset.region = row.region;
    const head = element("th", row.label);
    head.scope = "row";
    if (row.region !== TOTAL && row.label !== row.region) head.append(element("small", row.region));
    line.append(head,
      rateCell(row.insurances.pension, ["insured", "should"], goalOf(row, "pension")),
      rateCell(row.insurances.medical, ["insured", "should"], goalOf(row, "medical")),
      rateCell(row.registration, ["registered", "people"], null),
      rateCell(row.survey, ["verified", "needing"], goalOf(row, "survey")));
    return line;
  }));
}

let plotlyLoading = null;

// plotly.js (4.8 MB) is fetched when the first chart is drawn, not with the login screen.
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = element("script");
      script.src = LABELS.plotly;
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => {
        plotlyLoading = null;
        script.remove();
        reject(new Error("plotly.js"));
      });
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

// Grouped bars per city (pension, medical, survey), each bar's goal a dashed line across it.
async function drawCoverage(rows) {
  let Plotly;
  try {
    Plotly = await plotly();
  } catch (error) {
    $("coverage-state").textContent += "；图表组件加载失败，请参阅下表";
    return;
  }
  const x = rows.map((row) => row.label);
  const traces = SERIES.map((series) => ({
    type: "bar",
    name: series.label,
    x,
    y: rows.map((row) => (seriesOf(row, series.key) || {}).rate ?? null),
    marker: { color: series.color },
    text: rows.map((row) => percent((seriesOf(row, series.key) || {}).rate)),
    // Inside the bar, in white, halfway up: clear of the goal lines drawn across its top; above
    // a bar too short to hold it.
    textposition: "auto",
    insidetextanchor: "middle",
    insidetextfont: { color: "#fff" },
    outsidetextfont: { color: "#1f2328" },
    customdata: rows.map((row) => series.counts.map((c) => (seriesOf(row, series.key) || {})[c] ?? 0)),
    hovertemplate: `%{x}<br>${series.label} %{y:.1%}<br>${series.words[0]} %{customdata[0]:,} 人 / ` +
      `${series.words[1]} %{customdata[1]:,} 人<extra></extra>`,
  }));
  const width = (1 - BAR_GAP) / SERIES.length;
  const shapes = [];
  SERIES.forEach((series, k) => {
    rows.forEach((row, i) => {
      const goal = goalOf(row, series.key);
      if (goal === undefined || goal === null) return;
      const left = i - (1 - BAR_GAP) / 2 + k * width;
      shapes.push({
        type: "line", xref: "x", yref: "y", x0: left, x1: left + width, y0: goal, y1: goal,
        line: { color: "#b3261e", width: 2, dash: "dash" },
        name: "目标（虚线）", legendgroup: "goal", showlegend: i === 0 && k === 0,
      });
    });
  });
  const layout = {
    barmode: "group", bargap: BAR_GAP, bargroupgap: 0, height: 380,
    font: { family: FONT, size: 13, color: "#1f2328" },
    margin: { t: 40, r: 16, b: 40, l: 56 },
    xaxis: { type: "category", fixedrange: true },
    yaxis: { tickformat: ".0%", range: [0, 1.15], fixedrange: true, gridcolor: "#e5e9ee",
             title: { text: "比率" } },
    legend: { orientation: "h", x: 0, y: 1.12 },
    shapes,
    hoverlabel: { font: { family: FONT } },
  };
  await Plotly.react($("coverage-chart"), traces, layout,
    { displayModeBar: false, responsive: true, doubleClick: false });
  $("coverage-chart").setAttribute("aria-label",
    "参保覆盖情况图：" + rows.map((row) => `${row.label} ` + SERIES.map((s) =>
      `${s.label} ${percent((seriesOf(row, s.key) || {}).rate)}`).join("，")).join("；"));
}

// -- The year's targets (年度扩面计划, 40号 三(二)1) -----------------------------------------------

function chinaYear() {
  return new Date(Date.now() + CHINA_OFFSET_MS).getUTCFullYear();
}

function insuranceLabel(key) {
  const found = LABELS.insurances.find((insurance) => insurance.key === key);
  return found ? found.label : key;
}

function divisionText(code) {
  return me && code === me.scope ? scopeText(code) : code;
}

// A percent input per insurance.
function targetInputs() {
  $("target-rates").replaceChildren(...LABELS.insurances.map(({ key, label }) => {
    const field = element("label", label);
    const input = element("input");
    Object.assign(input, { id: `target-${key}`, name: key, type: "number", min: "0", max: "100",
      step: "0.1", inputMode: "decimal" });
    field.append(input, element("span", "%"));
    return field;
  }));
}

// The divisions a target may be entered for: the account's region and those coverage shows
// within it (its cities, or a city's counties).
function fillTargetRegions(divisions) {
  const select = $("target-region");
  const kept = select.value;
  const codes = [me.scope, ...divisions.map((d) => d.region)
    .filter((code) => code !== me.scope && /^\d+$/.test(code))];
  select.replaceChildren(...codes.map((code) => {
    const named = divisions.find((d) => d.region === code);
    const option = element("option", named && named.name && named.name !== code
      ? `${named.name}（${code}）` : divisionText(code));
    option.value = code;
    return option;
  }));
  select.value = codes.includes(kept) ? kept : me.scope;
  prefillTargets();
}

async function loadTargets() {
  const year = Number($("target-year").value);
  const asked = ++targetsAsked;
  if (!Number.isInteger(year) || year < 2000 || year > 2100) return;
  try {
    const body = await api("GET", `/api/v1/reports/targets/${year}`);
    if (asked !== targetsAsked) return;
    showTargets(body);
  } catch (error) {
    if (asked !== targetsAsked) return;
    $("targets").hidden = true;
    say($("targets-message"), "扩面计划暂无法查询：" + problemMessage(error));
  }
}

function showTargets(body) {
  targetEntries = body.targets;
  $("targets").tBodies[0].replaceChildren(...body.targets.map((target) => {
    const row = element("tr");
    row.append(element("td", divisionText(target.region)),
      element("td", insuranceLabel(target.insurance)),
      element("td", percent(target.rate), "number"),
      element("td", target.set_by), element("td", when(target.set_at)));
    return row;
  }));
  $("targets").hidden = body.targets.length === 0;
  prefillTargets();
}

// The inputs hold the chosen division's own targets of the year; empty: none entered.
function prefillTargets() {
  const region = $("target-region").value;
  for (const { key } of LABELS.insurances) {
    const entry = targetEntries.find((t) => t.region === region && t.insurance === key);
    $(`target-${key}`).value = entry ? String(Math.round(entry.rate * 1000) / 10) : "";
  }
}

async function saveTargets(event) {
  event.preventDefault();
  const message = $("targets-message");
  const year = Number($("target-year").value);
  if (!Number.isInteger(year) || year < 2000 || year > 2100) {
    say(message, "请填写年度（如 2026）");
    $("target-year").focus();
    return;
  }
  const rates = {};
  for (const { key, label } of LABELS.insurances) {
    const input = $(`target-${key}`);
    // A number input reads "" when what was typed is no number: checkValidity says so.
    if (!input.checkValidity()) {
      say(message, `${label}目标参保率应为 0 到 100 之间的百分数，至多一位小数`);
      input.focus();
      return;
    }
    if (input.value !== "") rates[key] = Math.round(Number(input.value) * 10) / 1000;
  }
  if (Object.keys(rates).length === 0) {
    say(message, "请至少填写一个险种的目标参保率");
    $(`target-${LABELS.insurances[0].key}`).focus();
    return;
  }
  const region = $("target-region").value;
  const submit = $("targets-submit");
  submit.disabled = true;
  say(message, "正在保存…", "busy");
  try {
    await api("PUT", `/api/v1/reports/targets/${year}`, { json: { region, rates } });
    say(message, `已保存 ${divisionText(region)} ${year} 年的扩面计划`, "ok");
    await Promise.all([loadTargets(), table ? loadCoverage(table.quarter) : null]);
  } catch (error) {
    say(message, "保存失败：" + problemMessage(error));
  } finally {
    enable(submit);
  }
}

// -- Keys and start -----------------------------------------------------------------------------

function onKey(event) {
  if (event.key !== "Escape" || $("work-view").hidden || $("people-view").hidden) return;
  event.preventDefault();
  closeAndReturn();
}

document.addEventListener("DOMContentLoaded", () => {
  peopleHeader();
  employersHeader();
  targetInputs();
  $("login-form").addEventListener("submit", logIn);
  $("quarter-form").addEventListener("submit", showQuarter);
  $("download-csv").addEventListener("click", (e) => downloadTable("csv", e.currentTarget));
  $("download-xlsx").addEventListener("click", (e) => downloadTable("xlsx", e.currentTarget));
  $("download-pdf").addEventListener("click", (e) => downloadTable("pdf", e.currentTarget));
  $("filing-form").addEventListener("submit", fileTable);
  $("targets-form").addEventListener("submit", saveTargets);
  $("target-year").addEventListener("change", loadTargets);
  $("target-region").addEventListener("change", prefillTargets);
  $("filing-xlsx").addEventListener("click", (e) => downloadFiled("xlsx", e.currentTarget));
  $("filing-pdf").addEventListener("click", (e) => downloadFiled("pdf", e.currentTarget));
  $("people-more").addEventListener("click", loadMorePeople);
  $("people-close").addEventListener("click", closeAndReturn);
  $("people-csv").addEventListener("click", (e) => downloadList(e.currentTarget));
  $("logout").addEventListener("click", () => signedOut("已退出登录"));
  document.addEventListener("keydown", onKey);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    signedIn().catch(() => signedOut());
  } else {
    $("username").focus();
  }
});
