# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest set-up.

Blender (the ``bpy`` module) keeps user preferences and extensions under its user
resource folder: point it at a temporary folder before anything imports ``bpy``, so
tests never touch a real user's Blender.
"""

import os
import sys
import tempfile
from pathlib import Path

_USER = Path(tempfile.mkdtemp(prefix="anchorstage-blender-user-"))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(_USER))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# Test helper modules (fixtures, ground-truth loaders) import as plain modules.
sys.path.insert(0, str(TESTS_DIR))
