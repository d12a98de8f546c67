import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { logShippingFiles, PROXY_LOG_FILE } from '../lib/proxy-host';

/**
 * The journal exporter's own command, run by the real journalctl on a real journal file. The file
 * is written by systemd-journal-remote from journal export format (Debian package
 * systemd-journal-remote), with the fields journald itself sets on a proxy host: what PID 1 says
 * about the unit, what the proxy writes, what ExecReload's kill and another unit write.
 */
const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';

const BOOT_ID = '0123456789abcdef0123456789abcdef';
const PROXY_LINES = [
  '{"timestamp":"2026-12-07T15:00:00Z","level":"INFO","fields":{"message":"serving","listen":"0.0.0.0:8080"}}',
  '{"timestamp":"2026-12-07T15:00:01Z","level":"INFO","fields":{"method":"GET","path":"/api/me","status":200}}',
];

/** Journal entries as journald records them on the host (trusted fields start with `_`). */
const ENTRIES: Record<string, string>[] = [
  // PID 1 about the unit: `journalctl -u` matches these (UNIT= with _PID=1).
  { MESSAGE: 'Starting planb-proxy.service - planb-proxy: Pingora passthrough from ALB1 to ALB2...', _PID: '1', _UID: '0', _SYSTEMD_UNIT: 'init.scope', UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'systemd' },
  { MESSAGE: PROXY_LINES[0], _PID: '4242', _UID: '61234', _SYSTEMD_UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'planb-proxy' },
  { MESSAGE: 'Started planb-proxy.service - planb-proxy: Pingora passthrough from ALB1 to ALB2.', _PID: '1', _UID: '0', _SYSTEMD_UNIT: 'init.scope', UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'systemd' },
  { MESSAGE: 'kill: (4242) - No such process', _PID: '4300', _UID: '61234', _SYSTEMD_UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'kill' },
  { MESSAGE: 'Accepted publickey', _PID: '77', _UID: '0', _SYSTEMD_UNIT: 'sshd.service', SYSLOG_IDENTIFIER: 'sshd' },
  { MESSAGE: PROXY_LINES[1], _PID: '4242', _UID: '61234', _SYSTEMD_UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'planb-proxy' },
  { MESSAGE: 'planb-proxy.service: Main process exited, code=exited, status=1/FAILURE', _PID: '1', _UID: '0', _SYSTEMD_UNIT: 'init.scope', UNIT: 'planb-proxy.service', SYSLOG_IDENTIFIER: 'systemd' },
];

function exportFormat(entries: Record<string, string>[], startUsec: number): string {
  return entries
    .map((fields, i) =>
      [`__REALTIME_TIMESTAMP=${startUsec + i}`, `__MONOTONIC_TIMESTAMP=${1_000_000 + i}`, `_BOOT_ID=${BOOT_ID}`]
        .concat(Object.entries(fields).map(([k, v]) => `${k}=${v}`))
        .join('\n'),
    )
    .join('\n\n')
    .concat('\n\n');
}

/** The exporter unit's ExecStart shell command (inside `/bin/sh -c '...'`). */
function exporterCommand(): string {
  const unit = logShippingFiles().files.find((f) => f.path.endsWith('planb-proxy-log-export.service'))!.content;
  return /^ExecStart=\/bin\/sh -c '(.*)'$/m.exec(unit)![1];
}

describe('journal exporter', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'planb-journal-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('systemd-journal-remote is installed (apt-get install systemd-journal-remote)', () => {
    expect(fs.existsSync(JOURNAL_REMOTE)).toBe(true);
  });

  test("copies the proxy's JSON lines only: none of systemd's lines about the unit, nor another program's", () => {
    const journal = path.join(dir, 'host.journal');
    const written = spawnSync(JOURNAL_REMOTE, [`--output=${journal}`, '--split-mode=none', '-'], {
      input: exportFormat(ENTRIES, Date.now() * 1000),
      encoding: 'utf8',
    });
    expect(written.stderr).toContain('Finishing after writing 7 entries');
    expect(written.status).toBe(0);

    // The unit's command as written, on this journal file instead of the host's, without --follow
    // (it would wait for more), the cursor and the output in the temp dir.
    const cursor = path.join(dir, 'cursor');
    const out = path.join(dir, 'proxy.log');
    const command = exporterCommand()
      .replace('exec journalctl ', `exec journalctl --file=${journal} `)
      .replace(' --follow', '')
      .replace(/--cursor-file=\S+/, `--cursor-file=${cursor}`)
      .replace(`>>${PROXY_LOG_FILE}`, `>>${out}`);
    expect(command).not.toContain(' -u ');
    const run = () => spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8' });

    const first = run();
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    const lines = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean);
    expect(lines).toEqual(PROXY_LINES);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();

    // A restart resumes after the last line copied: nothing twice.
    expect(fs.readFileSync(cursor, 'utf8')).toMatch(/^s=/);
    expect(run().status).toBe(0);
    expect(fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)).toEqual(PROXY_LINES);
  });
});
