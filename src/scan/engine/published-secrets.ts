/**
 * sha256 digests of secrets that Linux distributions ship on purpose as examples and templates,
 * so they protect nothing and would otherwise be reported in every image that installs the
 * package. A PEM key's digest is over its base64 body lines without line breaks; a PKCS#12
 * digest is over the whole file.
 */
const PUBLISHED_SECRET_DIGESTS: ReadonlyMap<string, string> = new Map([
  // Debian 12 libxmlsec1-dev 1.2.37: /usr/share/doc/libxmlsec1-dev/examples/rsakey.pem
  ['b3ef3851341fd279d40918299fd6f7c146e9e3d5b5861c22cb10995f439ca95c', 'xmlsec example RSA key'],
  // Debian 12 cmake-data 3.25: /usr/share/cmake-3.25/Templates/Windows/Windows_TemporaryKey.pfx
  ['a957fb8c8a3e3e7b1b8d2c58e97e02759b61cd7cbecca409c0763c8d6d9691f4', 'CMake Windows template signing key'],
  // Debian 12 ceph-common 16.2.15: /usr/share/ceph/id_rsa_drop.ceph.com, the key ceph-post-file uses to upload reports to drop.ceph.com
  ['0c4d0d279eec827bd8b5900f66a0f5bfcd797ff6264ac0eb1ab62446efcb8bfa', 'Ceph report upload key'],
]);

/** Reports whether a secret's sha256 is one that distributions publish as an example. */
export function isPublishedSecret(sha256: string): boolean {
  return PUBLISHED_SECRET_DIGESTS.has(sha256);
}
