"""Reading and writing datasets: file kinds, record formats, and the counts of what was kept.

    samples, report = read_samples("data/alpaca.json")        # format detected
    write_samples(samples, "out.jsonl")                         # canonical form
    write_samples(samples, "out.json", to="sharegpt")
"""

from tuneforge.io.convert import convert
from tuneforge.io.detect import detect_format
from tuneforge.io.formats import FORMATS
from tuneforge.io.read import iter_data, iter_samples, read_samples
from tuneforge.io.report import ReadReport
from tuneforge.io.writers import to_records, write_samples

__all__ = ["FORMATS", "ReadReport", "convert", "detect_format", "iter_data", "iter_samples", "read_samples",
           "to_records", "write_samples"]
