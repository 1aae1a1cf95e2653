"""tinykws: raw speech recordings to a keyword spotter on a Cortex-M4, with every step checked.

Pipeline stages, one module each:
data -> features -> dataset -> train -> export -> codegen (compile) -> device (verify)
-> evaluate / detect -> report.
"""

__version__ = "0.1.0"
