"""The offline bundle: one file that carries oi_local, its wheels and models to a machine with no network.

    oi-local bundle create --model smollm2-135m -o oi_local-bundle.tar      (on a connected machine)
    tar -xf oi_local-bundle.tar && oi_local-bundle/install.sh               (on the offline one)

Layout of an unpacked bundle (every file but manifest.json is listed in it with its size and sha256):
    oi_local-bundle/
      install.sh                POSIX sh: runs installer/install.py with the machine's python3
      manifest.json             what is inside, the target it was made for, how it was made
      installer/                the stdlib-only installer (a copy of the oi_local modules it needs)
      wheels/                   every wheel oi_local needs at the exact versions, requirements.txt
      models/                   the model files; catalog.json holds their catalog entries
      ollama/                   Ollama models in Ollama's own layout (manifests/..., blobs/sha256-<hex>)

The modules the installer runs on the target (manifest, target, verify, ollama, installer, bootstrap)
import nothing outside the standard library and these same modules: the target has no oi_local yet.
"""

ROOT_NAME = "oi_local-bundle"
