"""Every asset must run through Spark Connect: no RDD API, no SparkContext, no JVM.

Spark Connect sessions have no ``sparkContext``, no ``.rdd``, no py4j gateway
(``_jvm``, ``_jsc``, ``_jdf``...). This scan fails the build the moment such a
call appears anywhere in the code location; the real Connect run
(assets/test_orders_path_on_a_cluster.py) catches the rest.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "foodops_assets"
# attributes that exist only on a classic (JVM-backed) session or DataFrame
FORBIDDEN_ATTRIBUTES = {
    "sparkContext": "SparkContext is not available through Spark Connect",
    "rdd": "the RDD API is not available through Spark Connect",
    "_jvm": "py4j JVM access",
    "_jsc": "py4j JVM access",
    "_jdf": "py4j JVM access",
    "_jsparkSession": "py4j JVM access",
    "_jconf": "py4j JVM access",
    "_sc": "SparkContext access",
    "parallelize": "the RDD API",
    "mapPartitions": "the RDD API",
}
FORBIDDEN_IMPORTS = {"py4j", "pyspark.rdd", "pyspark.context", "pyspark.SparkContext"}


def violations(source: str, filename: str = "<source>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(
                f"{filename}:{node.lineno}: .{node.attr} ({FORBIDDEN_ATTRIBUTES[node.attr]})"
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "py4j" or alias.name in FORBIDDEN_IMPORTS:
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {f"{node.module}.{a.name}" for a in node.names}
            if (
                node.module.split(".")[0] == "py4j"
                or node.module in FORBIDDEN_IMPORTS
                or (names & FORBIDDEN_IMPORTS)
            ):
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Name) and node.id == "SparkContext":
            found.append(f"{filename}:{node.lineno}: SparkContext")
    return found


def test_the_code_location_is_spark_connect_clean():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the scan really covers the package
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(PACKAGE)))]
    assert found == [], "not Spark Connect clean:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "df.rdd.map(lambda r: r)",
        "spark.sparkContext.setLogLevel('WARN')",
        "spark._jvm.java.lang.System",
        "df._jdf.queryExecution()",
        "from py4j.java_gateway import java_import",
        "from pyspark import SparkContext",
        "spark.sparkContext.parallelize([1])",
    ],
)
def test_the_scan_catches_what_connect_cannot_run(snippet):
    assert violations(snippet)
