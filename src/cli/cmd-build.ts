import type { Command } from './command.js';
import { parseBuildOptions } from './build-options.js';
import { runBuild } from './build.js';

const cmd: Command = {
  summary: 'build an image from a Dockerfile and a context folder',
  usage: `kiln build [flags] CONTEXT_DIR
kiln build [flags] -        the context from standard input: a tar (or gzip tar) with the
                            Dockerfile inside (-f names another), or a Dockerfile alone
kiln build [flags] GIT_URL  a git repository: https://host/repo.git#REF:SUBDIR, git@host:repo.git,
                            git://, ssh:// or github.com/USER/REPO, checked out at the commit REF
                            (default HEAD) names; -f names a file inside it
kiln build [flags] URL      an http(s) URL of a tar (or gzip tar) context, or of a Dockerfile alone

  -t, --tag NAME            name the image in the local store (repeatable)
  -f, --file FILE           the Dockerfile (default CONTEXT_DIR/Dockerfile; - reads it from standard input)
      --build-context N=V   a named context: FROM N / COPY --from=N read the folder V, the
                            image R with V=docker-image://R, an OCI layout folder with
                            V=oci-layout://PATH[:TAG][@DIGEST], or a git or http URL (over a
                            stage or image named N)
      --build-arg K=V       set a build argument (repeatable; K alone takes it from the environment)
      --label K=V           set a label on the image (repeatable; over the Dockerfile's LABEL)
      --target STAGE        build this stage (name or index) and what it needs
      --platform OS/ARCH    target platform (default linux/amd64)
  -o, --output SPEC         type=oci|docker|local|tar|image|registry|cacheonly,dest=...,compression=...
      --annotation [T:]K=V  an OCI annotation on the image manifest (T: manifest, the default, or
                            manifest-descriptor, on its entry in an OCI layout output's index.json)
      --provenance false, --sbom false, --attest type=...,disabled=true
                            accepted: kiln writes no attestations (asking for one is an error)
      --load, --rm, --force-rm   accepted: images always land in kiln's store, no container is kept
      --push                push the -t names to their registries
      --pull                check registries for newer base images
      --iidfile FILE        write the image id (config digest) to FILE
      --metadata-file FILE  write build metadata as JSON to FILE
      --no-cache            run every step
      --no-cache-filter S   run every step of these stages (comma separated, repeatable)
      --check               report the Dockerfile's build checks (BuildKit's lint rules) and build
                            nothing; exit 1 when there is a warning (--call check is the same)
      --call targets        list the stages (and the descriptions their comments give), build nothing
      --explain             say why each step that ran missed the cache
      --jobs N              steps run at once (default: number of CPUs)
      --progress MODE       auto, tty, plain, json or quiet (default: BUILDKIT_PROGRESS, else auto)
  -q, --quiet               print only the image id
      --root DIR            the store (default KILN_ROOT, else cache/ in the checkout)
  -m, --memory SIZE         memory limit of each RUN step (512m, 2g)
      --pids-limit N        process limit of each RUN step
      --shm-size SIZE       size of each RUN step's /dev/shm (default 64m)
      --ulimit NAME=S[:H]   a resource limit of each RUN step (nofile=1024:2048; -1 is unlimited)
      --add-host NAME:IP    add a line to each RUN step's /etc/hosts (IP may be host-gateway)
      --cpus N              CPU limit of each RUN step (1.5)
  -c, --cpu-shares N        CPU weight of each RUN step (2-262144, default 1024)
      --cpu-period US, --cpu-quota US   CFS bandwidth of each RUN step (not with --cpus)
      --cpuset-cpus LIST, --cpuset-mems LIST   CPUs and memory nodes of each RUN step (0-3, 0,2)
      --memory-swap SIZE    memory and swap together of each RUN step (needs --memory; -1: unlimited)
      --cgroup-parent PATH  put each RUN step's cgroup below PATH (from the cgroup root)
      --compress, --isolation, --security-opt, --squash   accepted and ignored, as buildx does
      --builder NAME, --disable-content-trust   accepted and ignored (kiln is the builder)
      --network MODE        default network of RUN steps: default, none or host
      --secret id=X,src=F   a secret for RUN --mount=type=secret (src=FILE or env=VAR)
      --ssh ID[=SOCK|KEY,...]  an ssh agent (default: $SSH_AUTH_SOCK) or key files for RUN
                            --mount=type=ssh; the default one also serves git over ssh
      --allow security.insecure   permit RUN --security=insecure
      --source-date-epoch S clamp timestamps to S (default: SOURCE_DATE_EPOCH)
      --cache-to SPEC       export the build cache (type=registry,ref=R | type=local,dest=D | type=inline)
      --cache-from SPEC     import a build cache (type=registry,ref=R | type=local,src=D)
      --insecure-registry H allow plain HTTP to registry host H
`,
  async run(argv) {
    return runBuild(parseBuildOptions(argv));
  },
};
export default cmd;
