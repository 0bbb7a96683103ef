"""Where oi_local keeps its files: one home folder, overridable by OI_LOCAL_HOME.

Every folder here holds the user's data (conversations named after their prompts, settings, logs, models),
so each is 0700: `ensure()` creates them so and tightens ours where an older version left them open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.files import PRIVATE_DIR, FileWriteError, private_dir, tighten

APP_NAME = "oi_local"


@dataclass(frozen=True)
class AppPaths:
    config: Path
    models: Path
    logs: Path
    conversations: Path
    profiles: Path
    state: Path

    @property
    def user_catalog(self) -> Path:
        return self.config / "model_catalog.yaml"

    @property
    def folders(self) -> tuple[Path, ...]:
        return (self.config, self.models, self.logs, self.conversations, self.profiles, self.state)

    @property
    def offline_default(self) -> Path:
        """Written by an offline bundle's install: makes offline the default (oi_local.env.hub_offline)."""
        return self.config / "offline.json"

    def ensure(self) -> AppPaths:
        """Create the folders (0700), and tighten them and the app's own parent folders (those named
        oi_local, e.g. ~/.local/share/oi_local) to 0700. A folder OI_LOCAL_HOME names that already
        existed is the user's and is left as it is; its subfolders are ours."""
        for folder in self.folders:
            private_dir(folder)
            for parent in folder.parents:
                if parent.name == APP_NAME:
                    try:
                        tighten(parent, PRIVATE_DIR)
                    except OSError as error:
                        raise FileWriteError.of(parent, error) from error
                    break
        return self


def app_paths(environ: dict[str, str] | None = None) -> AppPaths:
    """The application folders; with OI_LOCAL_HOME set, all of them live under that one folder."""
    home = env.get(env.OI_LOCAL_HOME, environ)
    if home:
        root = Path(home).expanduser()
        return AppPaths(
            config=root / "config",
            models=root / "models",
            logs=root / "logs",
            conversations=root / "conversations",
            profiles=root / "profiles",
            state=root / "state",
        )
    import platformdirs

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    data = Path(dirs.user_data_dir)
    return AppPaths(
        config=Path(dirs.user_config_dir),
        models=data / "models",
        logs=Path(dirs.user_log_dir),
        conversations=data / "conversations",
        profiles=Path(dirs.user_config_dir) / "profiles",
        state=Path(dirs.user_state_dir),
    )
