"""Write the stylised representative-day profiles shipped with ieee33 and cigre_mv.

Three days (winter weekday 130 d, summer weekday 120 d, weekend 115 d = 365 d), 24 hourly
steps, normalised so that the winter-weekday evening peak of the residential class is 1.0.
The shapes are smooth sums of Gaussians placed at the morning and evening peaks (residential)
and at office hours (commercial), a stand-in until SimBench profiles are converted (see
the benchmark issue); they are data, not a result.

    python instances/tools/stylised_profiles.py instances/ieee33/profiles.csv
"""
import sys

import numpy as np


def shapes():
    h = np.arange(24)

    def bump(mu, sd, a):
        return a * np.exp(-0.5 * ((h - mu) / sd) ** 2)

    res = {"winter": 0.35 + bump(8, 1.5, 0.25) + bump(19, 2.0, 0.65),
           "summer": 0.30 + bump(8, 1.5, 0.15) + bump(20, 2.2, 0.40),
           "weekend": 0.33 + bump(11, 3.0, 0.25) + bump(19, 2.0, 0.50)}
    com = {"winter": 0.30 + bump(13, 3.2, 0.70), "summer": 0.28 + bump(14, 3.2, 0.60),
           "weekend": 0.25 + bump(13, 3.0, 0.20)}
    peak_r, peak_c = res["winter"].max(), com["winter"].max()
    return h, {d: v / peak_r for d, v in res.items()}, {d: v / peak_c for d, v in com.items()}


def main(path):
    h, res, com = shapes()
    weights = {"winter": 130, "summer": 120, "weekend": 115}
    with open(path, "w") as f:
        f.write("day,hour,weight,residential,commercial\n")
        for d, w in weights.items():
            for t in h:
                f.write(f"{d},{t},{w},{res[d][t]:.4f},{com[d][t]:.4f}\n")


if __name__ == "__main__":
    main(sys.argv[1])
