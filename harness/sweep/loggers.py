"""Optional experiment loggers. The JSON record stays the source of truth; loggers mirror it."""
from __future__ import annotations

from typing import Any


class WandbLogger:
    """Mirror a run to Weights & Biases: config at start, curves at every evaluation, summary at end.

    `mode="offline"` writes locally and never touches the network (sync later with `wandb sync`).
    """

    def __init__(self, project: str, entity: str | None = None, mode: str = "offline", group: str | None = None,
                 tags: list[str] | None = None, dir: str | None = None, out_dir: str | None = None,
                 log_record: bool = True):
        if mode not in ("online", "offline", "disabled"):
            raise ValueError(f"logger.mode must be online, offline or disabled, got {mode!r}")
        self.settings = dict(project=project, entity=entity, mode=mode, group=group, tags=list(tags or []), dir=dir or out_dir)
        self.log_record = log_record
        self.run = None

    def start(self, cfg: dict[str, Any], pair: dict[str, Any]) -> None:
        """Open the wandb run with the resolved config."""
        import wandb

        tags = self.settings["tags"] + [f"forward:{pair['forward']}", f"backward:{pair['backward']}",
                                        f"dataset:{cfg['dataset']['name']}", f"model:{cfg['model']['name']}"]
        self.run = wandb.init(project=self.settings["project"], entity=self.settings["entity"], mode=self.settings["mode"],
                              group=self.settings["group"], job_type=f"{pair['forward']}/{pair['backward']}", tags=tags,
                              dir=self.settings["dir"], config=cfg, name=f"{pair['label']} seed={cfg.get('seed')}",
                              reinit="finish_previous")

    def log(self, row: dict[str, Any]) -> None:
        """Log one evaluation row (keyed by its training step)."""
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=int(row["step"]))

    def finish(self, record: dict[str, Any]) -> None:
        """Write headline metrics to the summary and close the run."""
        if self.run is None:
            return
        m = record.get("metrics", {})
        speed, memory = m.get("speed") or {}, (m.get("memory") or {}).get("model") or {}
        self.run.summary.update({
            "status": record.get("status"), "run_key": (record.get("identity") or {}).get("run_key"),
            **{k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "step_ms": (speed.get("step_ms") or {}).get("median"), "samples_per_s": speed.get("samples_per_s"),
            "saved_bytes": memory.get("saved_bytes"), "saved_vs_native": memory.get("vs_native"),
        })
        if self.log_record and record.get("record_path"):
            import wandb

            artifact = wandb.Artifact(f"record-{record['identity']['run_key']}", type="run-record")
            artifact.add_file(record["record_path"], name="record.json")
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if record.get("status") in ("ok", "diverged") else 1)
        self.run = None


def make_logger(cfg: dict[str, Any] | None, out_dir: str | None = None):
    """Build the logger named by the `logger` config group (None for 'none')."""
    cfg = dict(cfg or {"name": "none"})
    name = cfg.pop("name", "none")
    if name == "none":
        return None
    if name == "wandb":
        return WandbLogger(out_dir=out_dir, **cfg)
    raise ValueError(f"unknown logger {name!r}; valid loggers: none, wandb")
