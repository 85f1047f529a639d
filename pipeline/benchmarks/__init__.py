"""The benchmarks (``anytime bench ...``): the cascade's four figures (``cascade_benchmarks``, measured
by ``cascade_runs``, tabled by ``cascade_report``), the temporal cascade on generated video
(``video_benchmark``), an ImageNet-size model through the whole pipeline (``imagenet_size``), and
training throughput and the recipe's ablations (``train_throughput``, ``training_ablations``).
Inside the package so that an installed pipeline runs them; ``benchmarks/*.py`` at the top of the
tree run them as scripts from a checkout."""
