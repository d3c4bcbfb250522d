# zstd OCI archives for the peers that can write them (sourced by compare.sh after run.sh's
# builders). docker 20.10's `docker save` has no compression choice, so it gets none.
buildah_oci_export_zstd() {
  buildah $(bs_opts buildah_oci) push --quiet --compression-format zstd "$1" "oci-archive:$2:$1"
}
buildah_chroot_export_zstd() {
  buildah $(bs_opts buildah_chroot) push --quiet --compression-format zstd "$1" "oci-archive:$2:$1"
}
podman_export_zstd() { pd push --quiet --compression-format zstd "$1" "oci-archive:$2:$1"; }
