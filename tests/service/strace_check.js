'use strict';
/*
 * Checks an strace log of dsd against the sandbox dsd.service declares.
 * Pure functions over text, so the test can feed them fabricated lines and
 * show that each rule does fire:
 *   parseFilterListing(text)   `systemd-analyze syscall-filter` -> Map group -> entries
 *   expandGroups(map, names)   a SystemCallFilter= list -> Set of syscall names
 *   parseUnit(text)            the hardening keys of a unit file
 *   parseStrace(text)          `strace -f` output -> [{pid, name, args, ret, line}]
 *   checkSandbox(calls, policy) -> {syscalls, violations, notes}
 */

/*
 * The listing is "@group" at column 0, then indented entries (syscall names
 * and nested @groups), "# comments" and blank lines in between.
 */
function parseFilterListing(text) {
  const groups = new Map();
  let current = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '');
    if (!line.trim()) continue;
    if (/^@[\w-]+\s*$/.test(line)) {
      current = [];
      groups.set(line.trim(), current);
    } else if (current && /^\s+[@\w-]+\s*$/.test(line)) {
      current.push(line.trim());
    }
  }
  return groups;
}

// Names and @groups -> the set of syscall names they allow (nested groups
// expanded; an unknown group is an error, not an empty set).
function expandGroups(groups, names) {
  const out = new Set();
  const seen = new Set();
  const add = (n) => {
    if (!n.startsWith('@')) {
      out.add(n);
      return;
    }
    if (seen.has(n)) return;
    seen.add(n);
    const members = groups.get(n);
    if (!members) throw new Error(`unknown syscall group ${n} (not in systemd-analyze syscall-filter)`);
    members.forEach(add);
  };
  names.forEach(add);
  return out;
}

/*
 * The [Service] keys the checks depend on. SystemCallFilter= may repeat
 * (lists add up; an empty assignment resets); a leading ~ would make it a
 * deny list, which these checks do not model, so that is refused loudly.
 */
function parseUnit(text) {
  const u = { syscallFilter: [], addressFamilies: null, memoryDenyWriteExecute: false,
    noNewPrivileges: false, capabilityBoundingSet: null, architectures: null, restrictNamespaces: false };
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Za-z]+)=(.*)$/.exec(raw);
    if (!m) continue;
    const [, key, value] = m;
    const words = value.trim().split(/\s+/).filter(Boolean);
    switch (key) {
      case 'SystemCallFilter':
        if (words.length === 0) u.syscallFilter = [];
        else if (words[0].startsWith('~')) throw new Error(`deny-list SystemCallFilter=${value} not supported`);
        else u.syscallFilter.push(...words);
        break;
      case 'RestrictAddressFamilies':
        u.addressFamilies = words;
        break;
      case 'MemoryDenyWriteExecute':
        u.memoryDenyWriteExecute = /^(yes|true|1|on)$/i.test(value.trim());
        break;
      case 'NoNewPrivileges':
        u.noNewPrivileges = /^(yes|true|1|on)$/i.test(value.trim());
        break;
      case 'CapabilityBoundingSet':
        u.capabilityBoundingSet = words;
        break;
      case 'RestrictNamespaces':
        u.restrictNamespaces = /^(yes|true|1|on)$/i.test(value.trim());
        break;
      case 'SystemCallArchitectures':
        u.architectures = words;
        break;
      default:
        break;
    }
  }
  return u;
}

/*
 * strace -f lines: "PID name(args) = ret", an "<unfinished ...>" line that a
 * later "<... name resumed>" line of the same PID completes, and "---
 * signal ---", "+++ exit +++" and "[ Process ... ]" lines (kept as events).
 * The PID prefix is optional so a log of one process parses too.
 */
function parseStrace(text) {
  const calls = [];
  const events = [];
  const pending = new Map(); // pid -> {name, head}
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const m = /^(?:(\d+)\s+)?(.*)$/.exec(line);
    const pid = m[1] ? Number(m[1]) : 0;
    const body = m[2];
    if (/^(---|\+\+\+|\[ )/.test(body)) {
      events.push({ pid, line });
      continue;
    }
    const resumed = /^<\.\.\. ([\w]+) resumed>(.*)$/.exec(body);
    let name;
    let rest;
    let shown = line;
    if (resumed) {
      const p = pending.get(pid);
      pending.delete(pid);
      name = resumed[1];
      const head = p && p.name === name ? p.head : `${name}(`;
      rest = `${head}${resumed[2]}`.slice(name.length);
      // Reported as the whole call, both halves joined.
      shown = `${m[1] ? `${pid} ` : ''}${head} <...> ${resumed[2]}`;
    } else {
      const c = /^([\w]+)(\(.*)$/.exec(body);
      if (!c) {
        events.push({ pid, line });
        continue;
      }
      name = c[1];
      rest = c[2];
      const u = /^(.*?)\s*<unfinished \.\.\.>$/.exec(rest);
      if (u) {
        pending.set(pid, { name, head: `${name}${u[1]}` });
        continue;
      }
    }
    // "(args) = ret": the last " = " outside the arguments is the result.
    const eq = /^\((.*)\)\s+=\s+(.*)$/.exec(rest);
    calls.push({ pid, name, args: eq ? eq[1] : rest.replace(/^\(/, ''), ret: eq ? eq[2] : '?', line: shown });
  }
  // A call still unfinished when the log ends (exit_group, a killed read)
  // was still made.
  for (const [pid, p] of pending) {
    const args = p.head.slice(p.name.length + 1);
    calls.push({ pid, name: p.name, args, ret: '?', line: `${pid} ${p.head} <unfinished ...>` });
  }
  return { calls, events };
}

// Splits "a, b(c, d), {e, f}, "g, h"" at top-level commas.
function splitArgs(args) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (let i = 0; i < args.length; i++) {
    const ch = args[i];
    if (quoted) {
      cur += ch;
      if (ch === '\\') cur += args[++i] || '';
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

const PROT = { PROT_READ: 1, PROT_WRITE: 2, PROT_EXEC: 4, PROT_SEM: 8, PROT_GROWSDOWN: 0x01000000, PROT_GROWSUP: 0x02000000 };

// "PROT_READ|PROT_EXEC", "PROT_NONE", "0x7", "PROT_READ|0x4" -> bits.
function protBits(s) {
  let bits = 0;
  for (const t of String(s).split('|')) {
    const tok = t.replace(/\/\*.*\*\//, '').trim();
    if (tok in PROT) bits |= PROT[tok];
    else if (/^(0x[0-9a-f]+|\d+)$/i.test(tok)) bits |= Number(tok);
  }
  return bits;
}

const PRIVILEGED = new Set([
  'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid',
  'setgroups', 'setuid32', 'setgid32', 'setreuid32', 'setregid32', 'setresuid32', 'setresgid32',
  'setfsuid32', 'setfsgid32', 'setgroups32', 'capset',
]);

// AF_LOCAL is another name of AF_UNIX; strace prints AF_UNIX.
function familyName(s) {
  return s === 'AF_LOCAL' || s === 'PF_LOCAL' || s === 'PF_UNIX' ? 'AF_UNIX' : s.replace(/^PF_/, 'AF_');
}

// The string strace printed for a path argument ("\"/etc/hosts\"" -> /etc/hosts).
function pathArg(a) {
  const m = /^"((?:[^"\\]|\\.)*)"/.exec(a || '');
  return m ? m[1] : null;
}

// Where each call that changes the file system names its path(s).
const WRITES = {
  mkdir: [0], mkdirat: [1], unlink: [0], unlinkat: [1], rmdir: [0], rename: [0, 1], renameat: [1, 3],
  renameat2: [1, 3], link: [1], linkat: [3], symlink: [1], symlinkat: [2], chmod: [0], fchmodat: [1],
  chown: [0], lchown: [0], fchownat: [1], truncate: [0], mknod: [0], mknodat: [1], utimensat: [1],
};
const OPENS = { open: [0, 1], openat: [1, 2], openat2: [1, 2], creat: [0, null] };

// What a private /dev (PrivateDevices=) still has.
const PRIVATE_DEV =
  /^\/dev\/(null|zero|full|random|urandom|tty|ptmx|pts(\/.*)?|shm(\/.*)?|mqueue(\/.*)?|stdin|stdout|stderr|fd(\/.*)?|log)$/;

// The file system side: ProtectSystem=strict (writes only below the
// service's own directories), ProtectHome= and PrivateDevices=.
function checkPaths(c, a, policy, bad) {
  const touched = [];
  if (OPENS[c.name]) {
    const [pi, fi] = OPENS[c.name];
    const flags = fi === null ? 'O_CREAT' : a[fi] || '';
    touched.push({ p: pathArg(a[pi]), write: /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(flags) });
  } else if (WRITES[c.name]) {
    for (const i of WRITES[c.name]) touched.push({ p: pathArg(a[i]), write: true });
  } else if (c.name === 'bind') {
    const m = /sun_path="([^"]*)"/.exec(c.args);
    if (m && m[1]) touched.push({ p: m[1], write: true });
  }
  for (const { p, write } of touched) {
    if (!p) continue;
    if (/^\/(home|root|run\/user)(\/|$)/.test(p)) bad('ProtectHome', c, `${p} is not visible`);
    if (p.startsWith('/dev/') && !PRIVATE_DEV.test(p)) bad('PrivateDevices', c, `${p} is not in a private /dev`);
    if (write && !PRIVATE_DEV.test(p) && !(policy.writable || []).some((d) => p === d || p.startsWith(`${d}/`))) {
      bad('ProtectSystem', c, `${p} is read-only (writable: ${(policy.writable || []).join(' ')})`);
    }
  }
}

/*
 * policy: {allowed: Set of syscall names, families: [AF_...] or null,
 * wx: bool (MemoryDenyWriteExecute), noPrivilege: bool, writable: [dirs]
 * or undefined (no file system checks)}.
 * Returns {syscalls: sorted names used, violations: [{rule, line}],
 * families: sorted families asked for}.
 */
function checkSandbox(calls, events, policy) {
  const violations = [];
  const bad = (rule, c, why) => violations.push({ rule, line: c.line || c, why });
  const names = new Set();
  const families = new Set();
  let execs = 0;
  for (const c of calls) {
    names.add(c.name);
    if (policy.allowed && !policy.allowed.has(c.name)) bad('SystemCallFilter', c, `${c.name} is not allowed`);
    const a = splitArgs(c.args);
    if ((c.name === 'socket' || c.name === 'socketpair') && policy.families) {
      const fam = familyName(a[0] || '');
      families.add(fam);
      if (!policy.families.includes(fam)) bad('RestrictAddressFamilies', c, `${fam} is not allowed`);
    }
    if (policy.wx) {
      if (c.name === 'mmap' || c.name === 'mmap2') {
        const p = protBits(a[2]);
        if (p & PROT.PROT_WRITE && p & PROT.PROT_EXEC) bad('MemoryDenyWriteExecute', c, 'writable and executable mapping');
      }
      // systemd's filter refuses any mprotect that sets PROT_EXEC, not just
      // one on a writable mapping: code is mapped executable once, by mmap.
      if ((c.name === 'mprotect' || c.name === 'pkey_mprotect') && protBits(a[2]) & PROT.PROT_EXEC) {
        bad('MemoryDenyWriteExecute', c, `${c.name} adding PROT_EXEC`);
      }
      if (c.name === 'shmat' && /SHM_EXEC/.test(a[2] || '')) bad('MemoryDenyWriteExecute', c, 'shmat SHM_EXEC');
    }
    if (c.name === 'execve' || c.name === 'execveat') {
      execs += 1;
      if (execs > 1) bad('NoNewPrivileges', c, 'a second execve: dsd runs no other program');
    }
    if (policy.noPrivilege && PRIVILEGED.has(c.name)) bad('CapabilityBoundingSet', c, `${c.name} changes credentials`);
    // LockPersonality=: only the query personality(0xffffffff) is harmless.
    if (c.name === 'personality' && !/^(0xffffffff|PER_QUERY|-1)/.test(a[0] || '')) {
      bad('LockPersonality', c, 'personality changed');
    }
    if (policy.writable) checkPaths(c, a, policy, bad);
    if (/^syscall_0x/.test(c.name)) bad('SystemCallArchitectures', c, 'a syscall strace does not know');
  }
  for (const e of events) {
    if (/runs in .* mode/.test(e.line)) bad('SystemCallArchitectures', e, 'a non-native ABI');
  }
  return { syscalls: [...names].sort(), families: [...families].sort(), violations };
}

module.exports = { parseFilterListing, expandGroups, parseUnit, parseStrace, splitArgs, protBits, checkSandbox };
