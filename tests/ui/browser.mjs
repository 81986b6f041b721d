// The page at /ui in Debian's chromium (headless) through playwright-core, against the uflowd
// that tests/ui/ui_check.py started. One argument: that script's JSON configuration. Exit 0
// when every check passed, 1 with the reasons otherwise. Every wait is bounded.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(path.join(cfg.playwright, 'noop.js'));
const { chromium } = require('playwright-core');

const failures = [];
const check = (ok, what) => { console.log((ok ? 'ok   ' : 'FAIL ') + what); if (!ok) failures.push(what); };
const WAIT = { timeout: 30000 };
const fmt4 = (v) => v.toFixed(4);

mkdirSync(cfg.userDataDir, { recursive: true });
const ctx = await chromium.launchPersistentContext(cfg.userDataDir, {
  executablePath: cfg.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1360, height: 980 },
  deviceScaleFactor: 1,
});
ctx.setDefaultTimeout(30000);

// Console errors other than the expected 401s before the key is entered fail the test: a
// CSP violation ("Refused to ...") or a script exception shows up here.
const problems = [];
function watch(page) {
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push('console: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('exception: ' + e.message));
}

async function enterKey(page) {
  await page.locator('#notice', { hasText: 'needs an API key' }).waitFor(WAIT);
  await page.fill('#key', cfg.key);
  await page.click('#keyform button[type=submit]');
  await page.waitForFunction((m) => {
    const s = document.getElementById('model');
    return !s.disabled && [...s.options].some((o) => o.value === m);
  }, cfg.model, WAIT);
}

async function waitScored(page, n) {
  await page.waitForFunction((n) => {
    const pills = [...document.querySelectorAll('#batch tbody .pill')];
    return pills.length === n && pills.every((p) => !['queued', 'running'].includes(p.textContent));
  }, n, WAIT);
}

// What the page shows for row i (0-based) once clicked.
async function rowView(page, i) {
  await page.locator('#batch tbody tr').nth(i).locator('button').click();
  await page.waitForFunction((i) => document.querySelector('#batch tbody tr[aria-current=true]') ===
    document.querySelectorAll('#batch tbody tr')[i], i, WAIT);
  await page.waitForFunction(() => { const h = document.getElementById('ov-heat'); return h.complete && h.naturalWidth > 0; },
                             null, WAIT).catch(() => {});
  return page.evaluate(() => {
    const q = (s) => document.querySelector(s);
    const heat = q('#ov-heat'), input = q('#in-img'), c = q('#ov-mask');
    let maskPixels = 0;
    if (c.width && c.height) {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let k = 3; k < d.length; k += 4) if (d[k]) maskPixels++;
    }
    const dd = Object.fromEntries([...q('#verdict dl').children].reduce((acc, e, j, all) =>
      (e.tagName === 'DT' ? acc.concat([[e.textContent, all[j + 1].textContent]]) : acc), []));
    const box = input.getBoundingClientRect();
    return { label: q('#verdict-label').dataset.label, score: dd.Score, area: dd['NFA defect area'],
             heatLoaded: heat.complete && heat.naturalWidth > 0, heatWidth: heat.naturalWidth,
             heatOpacity: getComputedStyle(heat).opacity, inputLoaded: input.complete && input.naturalWidth > 0,
             inputBox: [box.width, box.height], orient: q('#orient').hidden ? '' : q('#orient').textContent,
             maskPixels, maskSize: [c.width, c.height] };
  });
}

try {
  const page = await ctx.newPage();
  watch(page);
  // a browser asking for / is sent to the page; the page itself needs no key
  const resp = await page.goto(cfg.url + '/', { waitUntil: 'load' });
  check(page.url() === cfg.url + '/ui', `GET / from a browser lands on /ui (at ${page.url()})`);
  const csp = (await resp.allHeaders())['content-security-policy'] || '';
  check(/script-src 'sha256-[A-Za-z0-9+/=]+'/.test(csp) && /default-src 'none'/.test(csp),
        'the page carries a hash-based Content-Security-Policy');
  await enterKey(page);
  check(await page.evaluate(() => sessionStorage.getItem('uflowd.key')) === cfg.key, 'the key is kept in sessionStorage');
  check((await page.locator('#meta').textContent()).includes('Image threshold'), 'the model metadata shows its threshold');

  await page.check('#mask');
  await page.setInputFiles('#files', cfg.files);
  await waitScored(page, cfg.files.length);
  for (let i = 0; i < cfg.files.length; i++) {
    const name = path.basename(cfg.files[i]), want = cfg.expect[name], v = await rowView(page, i);
    check(v.label === want.label, `${name}: label ${v.label} (uflow predict: ${want.label})`);
    check(v.score.startsWith(fmt4(want.score)), `${name}: score "${v.score}" (uflow predict: ${fmt4(want.score)})`);
    check(v.heatLoaded && v.heatWidth === 64, `${name}: the heatmap overlay loaded (naturalWidth ${v.heatWidth})`);
    check(v.inputLoaded, `${name}: the input image is shown`);
    const area = parseFloat(v.area);
    check(v.area !== undefined && (area === 0 || v.maskPixels > 0),
          `${name}: NFA area ${v.area}, outline pixels ${v.maskPixels} on a ${v.maskSize.join('x')} canvas`);
  }
  // the slider drives the heatmap's opacity
  await page.locator('#opacity').fill('80');
  check((await rowView(page, 0)).heatOpacity === '0.8', 'the opacity slider sets the overlay opacity');
  // the live panel: both predictions counted from /metrics
  const served = await page.waitForFunction(() => document.getElementById('m-served').textContent === '2', null, WAIT)
    .then(() => true, () => false);
  check(served, 'the live panel counts the 2 predictions from /metrics');
  await page.waitForFunction(() => document.getElementById('m-rate').textContent !== '—', null, WAIT).catch(() => {});
  check((await page.textContent('#m-rate')) !== '—', `the live panel shows a rate (${await page.textContent('#m-rate')})`);
  await rowView(page, cfg.files.findIndex((f) => cfg.expect[path.basename(f)].label === 'anomalous'));
  await page.screenshot({ path: cfg.screenshot, fullPage: true });
  console.log('screenshot: ' + cfg.screenshot);

  // a phone photo marked "rotated 90°" by EXIF: shown as stored (landscape) and scored as stored
  await page.setInputFiles('#files', [cfg.rotated]);
  await waitScored(page, cfg.files.length + 1);
  const r = await rowView(page, cfg.files.length), d = cfg.expect[path.basename(cfg.files[0])];
  check(r.orient.includes('EXIF orientation 6'), 'the EXIF orientation is explained: ' + r.orient.slice(0, 60) + '…');
  check(r.inputBox[0] > r.inputBox[1], `the rotated photo is shown as stored, landscape (${r.inputBox.map(Math.round).join('x')})`);
  check(r.label === d.label && r.score.startsWith(fmt4(d.score)), `the rotated copy scores as the original (${r.score})`);

  // a phone-sized window: one column, nothing wider than the screen
  const phone = await ctx.newPage();
  watch(phone);
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(cfg.url + '/ui');
  await enterKey(phone);
  await phone.setInputFiles('#files', [cfg.files[0]]);
  await waitScored(phone, 1);
  const widths = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(widths[0] <= widths[1], `no horizontal scrolling at 390 px (content ${widths[0]} px)`);
  await phone.screenshot({ path: cfg.mobileScreenshot, fullPage: true });
  check(problems.length === 0, 'no console error or CSP violation' + (problems.length ? ': ' + problems.join(' | ') : ''));
} catch (e) {
  failures.push(String(e && e.stack || e));
  console.log('FAIL ' + (e && e.stack || e));
} finally {
  await ctx.close();
}
console.log(failures.length ? `browser test: ${failures.length} failed` : 'browser test: all checks passed');
process.exit(failures.length ? 1 : 0);
