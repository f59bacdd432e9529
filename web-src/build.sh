#!/usr/bin/env bash
# Vendors the web page's graph library into the Python package (run at release time, or
# after changing the pinned version in package.json; the result is committed).
#
#   cd web-src && ./build.sh
#
# 1. installs exactly what package-lock.json pins (npm ci; no install scripts run);
# 2. copies the minified UMD build of Cytoscape.js and its licence into
#    src/fabricscope/web/static/vendor/, with a VERSIONS file naming what was copied.
# The page loads only these local files: nothing is fetched from the network at run time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/../src/fabricscope/web/static/vendor"
cd "$here"
npm ci --no-audit --no-fund --ignore-scripts
mkdir -p "$dest"
pkg=node_modules/cytoscape
version="$(node -p "require('./$pkg/package.json').version")"
cp "$pkg/dist/cytoscape.min.js" "$dest/cytoscape.min.js"
cp "$pkg/LICENSE" "$dest/cytoscape.LICENSE"
sha="$(sha256sum "$dest/cytoscape.min.js" | cut -d' ' -f1)"
cat > "$dest/VERSIONS" <<TXT
# Third-party files vendored by web-src/build.sh (do not edit by hand).
cytoscape $version  cytoscape.min.js  licence: cytoscape.LICENSE (MIT)  sha256: $sha
TXT
echo "vendored cytoscape $version into $dest"
