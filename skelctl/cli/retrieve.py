"""`skelctl retrieve`: build a FAISS gallery, query it with skeleton files, or run the k-NN
evaluation protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from skelctl.cli.options import JSON, OUT, JobOptions, with_option_groups
from skelctl.console import err, print_json


def register(app: typer.Typer) -> None:
    app.command("retrieve")(with_option_groups(retrieve_command))


def retrieve_command(
    job: JobOptions,
    query: list[str] = typer.Option(
        [], "--query", "-q", metavar="FILE|FOLDER|-",
        help="Query clip: a raw NTU .skeleton file or a .npy array shaped (T,V,C), (T,M,V,C) "
        "or (C,T,V,M), preprocessed like the gallery. Repeatable; a folder means its "
        ".skeleton/.npy files; '-' reads paths from stdin."),
    k: int = typer.Option(10, "-k", min=1, metavar="K", help="Neighbours per query."),
    index: Path | None = typer.Option(None, "--index", metavar="INDEX_DIR", help="Index directory "
                                      "to query or evaluate (default: <run>/index of the encoder's "
                                      "run, built on first use)."),
    build: Path | None = typer.Option(None, "--build", metavar="INDEX_DIR",
                                      help="Embed a split and write a FAISS index there."),
    split: str = typer.Option("train", "--split", metavar="train|test", help="Split to index with --build."),
    index_type: str = typer.Option("exact", "--index-type", metavar="exact|ivf|hnsw",
                                   help="exact (IndexFlatIP), ivf or hnsw (recall@k against "
                                   "exact search is reported at build time)."),
    evaluate: bool = typer.Option(False, "--eval", help="k-NN protocol: 1-NN cosine accuracy "
                                  "of the test split against the train gallery, and k-NN votes."),
    k_list: str = typer.Option("1,5,10", "--k-list", metavar="K,K,...", help="k values of the k-NN votes (--eval)."),
    out: Path | None = OUT,
    json_out: bool = JSON,
) -> None:
    """Nearest-neighbour retrieval over a split embedded by an encoder (cosine similarity)."""
    from skelctl.evaluate import retrieval

    mode = retrieval.retrieve_mode(build, query, evaluate, index, split)
    ks = retrieval.parse_k_list(k_list) if mode == "eval" else []
    spec = job.encoder[0] if job.encoder else None
    if mode == "build":
        print_build(retrieval.build_index_dir(job.resolve(), build, split, index_type, job.seed), json_out)
    elif mode == "query":
        print_matches(retrieval.answer_queries(query, k, index, spec, job.resolve, job.device), json_out)
    else:
        print_knn(retrieval.knn_protocol(ks, index, spec, job.resolve, job.device, out), json_out)


def print_build(summary: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(summary)
        return
    recall = summary["recall"]
    extra = "" if recall is None else "; " + ", ".join(
        f"{key} {value:.4f}" for key, value in recall.items() if key.startswith("recall"))
    typer.echo(f"{summary['index']}: {summary['count']} clips, {summary['index_type']} index{extra}")


def print_matches(answers: list[tuple[Path, Any]], json_out: bool) -> None:
    from skelctl.evaluate.retrieval import format_matches

    for path, matches in answers:
        if json_out:
            print_json({"query": str(path), "results": [m.to_json() for m in matches]})
        else:
            typer.echo(format_matches(path, matches) + "\n")


def print_knn(result: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(result)
        return
    for key, votes in result["knn"].items():
        err.print(f"  {key}-NN  majority {votes['majority']:6.2f}  weighted {votes['weighted']:6.2f}")
    out = result.get("out")
    typer.echo(f"knn-cosine {result['benchmark']}: 1-NN top-1 {result['top1']:.2f}  "
               f"top-5 {result['top5']:.2f}" + (f"  ({out})" if out else ""))

