"""Loading a TFDS dataset, preparing it first if it is not in the data directory yet."""


def load_tfds(name: str, split: str, data_dir: str | None = None, **as_dataset_kwargs):
    """`(dataset, info)` as `tfds.load(..., with_info=True)`.

    A dataset not yet prepared in `data_dir` is downloaded and prepared there, as
    `tfds.load` does; when that fails (no network), the error says so and how to
    prepare it elsewhere, instead of ending in a bare connection error.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except (ValueError, AssertionError) as error:  # an unknown name, config or version
        # TFDS appends its whole catalogue (hundreds of lines) to an unknown name.
        lines = str(error).split("\nAvailable datasets:")[0].strip().splitlines()
        raise ValueError(f"TFDS has no {name!r}: {' '.join(line.strip() for line in lines[:12])}"
                         " (names: https://www.tensorflow.org/datasets/catalog)") from None
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except OSError as error:  # requests' network errors are OSErrors too
            raise OSError(
                f"TFDS dataset {name} is not prepared in {builder.data_dir} and downloading "
                f"it failed ({type(error).__name__}: {str(error)[:300]}); without network, "
                f"prepare it on a machine that has it (tfds build {name} --data_dir=DIR) and "
                "copy DIR here (the tools' --tfds_data_dir)") from None
    return builder.as_dataset(split=split, **as_dataset_kwargs), builder.info
