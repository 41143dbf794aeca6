"""`skelctl retrieve`: build a FAISS gallery, query it with skeleton files, or run the k-NN
evaluation protocol."""

from __future__ import annotations

from pathlib import Path

import typer

from skelctl.cli.linear import (
    BENCHMARK,
    DATA,
    DEVICE,
    ENCODER,
    FRAMES,
    JSON,
    NORMALIZE,
    OUT,
    SEED,
    STREAMS,
)
from skelctl.console import err, print_json
from skelctl.errors import SkelctlError


def _k_list(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise SkelctlError(f"--k-list {text}: expected positive integers, comma separated (1,5,10)")
    return ks


def register(app: typer.Typer) -> None:
    @app.command("retrieve")
    def retrieve_command(
        query: list[str] = typer.Option(
            [], "--query", "-q", metavar="FILE|FOLDER|-",
            help="Query clip: a raw NTU .skeleton file or a .npy array shaped (T,V,C), (T,M,V,C) "
            "or (C,T,V,M), preprocessed like the gallery. Repeatable; a folder means its "
            ".skeleton/.npy files; '-' reads paths from stdin."),
        k: int = typer.Option(10, "-k", min=1, help="Neighbours per query."),
        index: Path | None = typer.Option(None, "--index", help="Index directory to query or "
                                          "evaluate (default: <run>/index of the encoder's run, "
                                          "built on first use)."),
        build: Path | None = typer.Option(None, "--build", metavar="INDEX_DIR",
                                          help="Embed a split and write a FAISS index there."),
        split: str = typer.Option("train", "--split", help="Split to index with --build: train or test."),
        index_type: str = typer.Option("exact", "--index-type",
                                       help="exact (IndexFlatIP), ivf or hnsw (recall@k against "
                                       "exact search is reported at build time)."),
        evaluate: bool = typer.Option(False, "--eval", help="k-NN protocol: 1-NN cosine accuracy "
                                      "of the test split against the train gallery, and k-NN votes."),
        k_list: str = typer.Option("1,5,10", "--k-list", help="k values of the k-NN votes (--eval)."),
        encoder: list[str] = ENCODER,
        data: str | None = DATA,
        benchmark: str | None = BENCHMARK,
        streams: str | None = STREAMS,
        frames: int | None = FRAMES,
        normalize: str | None = NORMALIZE,
        seed: int = SEED,
        device: str = DEVICE,
        out: Path | None = OUT,
        json_out: bool = JSON,
    ) -> None:
        """Nearest-neighbour retrieval over a split embedded by an encoder (cosine similarity)."""
        from skelctl.engine.precision import resolve_device
        from skelctl.evaluate import retrieval
        from skelctl.evaluate.index import load_index
        from skelctl.evaluate.protocols import parse_streams, resolve_job, write_result

        modes = [name for name, on in (("--build", build), ("--query", query), ("--eval", evaluate)) if on]
        if len(modes) != 1:
            raise SkelctlError("pass exactly one of --build INDEX_DIR, --query FILE, --eval"
                               + (f" (got {', '.join(modes)})" if modes else ""))
        if build is not None and index is not None:
            raise SkelctlError("--build writes an index; --index reads one: pass one of them")

        if build is not None:
            if split not in ("train", "test"):
                raise SkelctlError(f"--split {split}: expected train or test")
            job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames,
                              normalize)
            summary = retrieval.build_index_dir(job, build, split, index_type, seed)
            if json_out:
                print_json(summary)
            else:
                recall = summary["recall"]
                extra = "" if recall is None else "; " + ", ".join(
                    f"{key} {value:.4f}" for key, value in recall.items() if key.startswith("recall"))
                typer.echo(f"{summary['index']}: {summary['count']} clips, {summary['index_type']} "
                           f"index{extra}")
            return

        if index is not None:
            gallery = load_index(index)
            loaded = retrieval.index_encoder(gallery, encoder[0] if encoder else None, index)
            run_device = resolve_device(device, "--device")
        elif query:
            job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames,
                              normalize)
            gallery, loaded = retrieval.default_gallery(job)
            run_device = job.device
        if query:
            paths = retrieval.expand_queries(query)
            for path, matches in zip(paths, retrieval.query_gallery(gallery, loaded, paths, k, run_device),
                                     strict=True):
                if json_out:
                    print_json({"query": str(path), "results": [m.to_json() for m in matches]})
                else:
                    typer.echo(retrieval.format_matches(path, matches) + "\n")
            return

        ks = _k_list(k_list)
        if index is not None:
            result = retrieval.evaluate_knn_index(gallery, index, loaded, ks, run_device)
            out_dir = out
        else:
            job = resolve_job(encoder, parse_streams(streams), data, benchmark, device, seed, frames,
                              normalize)
            result = retrieval.evaluate_knn(job, ks)
            out_dir = out or (job.run_dir / "eval" / f"knn-{job.benchmark}" if job.run_dir else None)
        if out_dir is not None:
            result["out"] = str(out_dir)
            write_result(out_dir, result)
        if json_out:
            print_json(result)
        else:
            for key, votes in result["knn"].items():
                err.print(f"  {key}-NN  majority {votes['majority']:6.2f}  weighted {votes['weighted']:6.2f}")
            typer.echo(f"knn-cosine {result['benchmark']}: 1-NN top-1 {result['top1']:.2f}  "
                       f"top-5 {result['top5']:.2f}" + (f"  ({out_dir})" if out_dir else ""))
