"""Where oi_local keeps its files: one home folder, overridable by OI_LOCAL_HOME."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oi_local import env

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

    def ensure(self) -> AppPaths:
        for folder in (self.config, self.models, self.logs, self.conversations, self.profiles, self.state):
            folder.mkdir(parents=True, exist_ok=True)
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
