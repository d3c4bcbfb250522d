// COPY/ADD -> file op: sources from the context, a stage or an image; heredocs become files;
// ADD of a URL becomes a download.

import { posix } from 'node:path';
import type { FileAction } from '../graph/ops.js';
import type { CopyInstruction } from './instructions/types.js';
import { checkChmod, parseChown } from './instructions/values.js';
import { parseHeredocWord, chompHeredocContent } from './parser/heredoc.js';
import { ShellLex, ShellError } from './shell/lex.js';
import type { Ctx, StageState } from './convert.js';
import type { Digest } from '../graph/ops.js';
import { expandInStage, warnUndefinedVars } from './stage-vars.js';
import { parseGitRef, type GitRef } from '../worker/git/ref.js';

const isURL = (s: string) => /^https?:\/\//.test(s);

function heredocName(word: string): string | undefined {
  try {
    return parseHeredocWord(word)?.name;
  } catch {
    return undefined;
  }
}

export async function convertCopy(ctx: Ctx, st: StageState, ins: CopyInstruction): Promise<{ createdBy: string; nodeId: string }> {
  const loc = ins.location;
  const env = st.scope.lookup();
  const expand = (word: string) => expandInStage(ctx, st, word, loc);
  const KW = ins.kind.toUpperCase();
  const cwd = st.config.WorkingDir || '/';
  const destWritten = expand(ins.dest);
  let dest = posix.normalize(destWritten.startsWith('/') ? destWritten : posix.join(cwd, destWritten === '' ? '.' : destWritten));
  if (destWritten === '.' || destWritten === '' || destWritten.endsWith('/')) dest = dest.endsWith('/') ? dest : dest + '/';
  const chownText = ins.chown !== undefined ? expand(ins.chown) : undefined;
  const chown = chownText ? parseChown(chownText) : undefined;
  const chmod = ins.chmod !== undefined ? expand(ins.chmod) : undefined;
  if (chmod !== undefined) {
    const bad = checkChmod(chmod);
    if (bad) ctx.fail(bad, loc);
  }
  const checksum = ins.checksum !== undefined ? expand(ins.checksum) : undefined;
  // Not checked for undefined variables: the COPY/ADD words BuildKit checks are --chown, --chmod,
  // --checksum, the sources and the destination.
  const exclude = ins.exclude.map((e) => ctx.expand(e, env, loc));

  const inputs = [st.current];
  let srcInput: number | undefined;
  const sourceInput = async () => {
    if (srcInput === undefined) {
      const id = ins.from !== undefined ? await ctx.sourceNode(ctx.expand(ins.from, ctx.metaLookup, loc), loc, st.platform) : ctx.contextNode();
      inputs.push(id);
      srcInput = inputs.length - 1;
    }
    return srcInput;
  };

  const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
  const paths: string[] = [];
  const contents: string[] = [];
  const urls: string[] = [];
  const gits: GitRef[] = [];
  /** Every source but heredocs, in the order written: the history lists them so. */
  const written: string[] = [];
  for (const raw of ins.srcs) {
    const name = heredocs.size ? heredocName(raw) : undefined;
    if (name !== undefined && heredocs.has(name)) {
      contents.push(name);
      continue;
    }
    const src = expand(raw);
    written.push(src);
    const git = parseGitRef(src);
    if (git) {
      if (ins.kind === 'copy') ctx.fail('source can\'t be a git ref for COPY', loc);
      if (git.invalid) ctx.fail(`${src}: ${git.invalid}`, loc);
      gits.push(git);
    } else if (isURL(src)) {
      if (ins.kind === 'copy') ctx.fail('source can\'t be a URL for COPY', loc);
      urls.push(src);
    } else paths.push(src);
  }
  if (checksum !== undefined) {
    if (ins.srcs.length !== 1) ctx.fail('checksum can\'t be specified for multiple sources', loc);
    if (urls.length + gits.length !== 1) ctx.fail('checksum requires HTTP(S) or Git sources', loc);
    if (urls.length === 1 && !/^sha256:[0-9a-f]{64}$/.test(checksum)) ctx.fail(`invalid checksum "${checksum}": expected sha256:<64 hex digits>`, loc);
    if (gits.length === 1 && !/^[0-9a-f]{4,64}$/.test(checksum)) ctx.fail(`invalid checksum "${checksum}": expected the commit (hex digits)`, loc);
  }

  const actions: FileAction[] = [];
  const owner = chown ? { chown } : {};
  if (paths.length) {
    actions.push({
      action: 'copy', from: await sourceInput(), src: paths, dest, ...owner, ...(chmod !== undefined ? { chmod } : {}),
      link: ins.link, parents: ins.parents, exclude, add: ins.kind === 'add',
      ...(ins.unpack !== undefined ? { unpack: ins.unpack } : {}), ...(ins.keepGitDir !== undefined ? { keepGitDir: ins.keepGitDir } : {}),
    });
  }
  for (const url of urls) {
    actions.push({
      action: 'download', url, dest, ...owner, ...(chmod !== undefined ? { chmod } : {}),
      ...(checksum ? { checksum: checksum as Digest } : {}), ...(ins.unpack !== undefined ? { unpack: ins.unpack } : {}),
    });
  }
  for (const ref of gits) {
    if (checksum && ref.checksum && checksum !== ref.checksum) ctx.fail(`--checksum=${checksum} and the URL's checksum=${ref.checksum} differ`, loc);
    const commit = checksum ?? ref.checksum;
    actions.push({
      action: 'git', remote: ref.remote, ...(ref.ref ? { ref: ref.ref } : {}), ...(ref.subdir ? { subdir: ref.subdir } : {}),
      dest, keepGitDir: ins.keepGitDir ?? false, ...(commit ? { checksum: commit } : {}), ...owner, ...(chmod !== undefined ? { chmod } : {}),
    });
  }
  for (const name of contents) {
    const h = heredocs.get(name)!;
    let data = h.chomp ? chompHeredocContent(h.content) : h.content;
    if (h.expand) {
      try {
        const r = new ShellLex({ skipProcessQuotes: true }).processWordWithMatches(data, env);
        warnUndefinedVars(ctx, st, r.unmatched, loc);
        data = r.result;
      } catch (e) {
        if (e instanceof ShellError) ctx.fail(e.message, loc);
        throw e;
      }
    }
    const path = dest.endsWith('/') ? dest + name : dest;
    actions.push({ action: 'mkfile', path, content: data, mode: 0o644, ...owner, ...(chmod !== undefined ? { chmod } : {}) });
  }
  const nodeId = st.addNode({ kind: 'file', actions }, inputs, ins);
  let msg = KW;
  if (ins.parents) msg += ' --parents';
  if (chownText) msg += ` --chown=${chownText}`;
  if (chmod !== undefined) msg += ` --chmod=${chmod}`;
  for (const p of written) msg += ' ' + p;
  for (const n of contents) msg += ' <<' + n;
  msg += ' ' + destWritten;
  return { createdBy: `${msg} # buildkit`, nodeId };
}
