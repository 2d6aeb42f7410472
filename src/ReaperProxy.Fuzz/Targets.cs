namespace ReaperProxy.Fuzz;

/// <summary>The fuzz targets by name, as tools/fuzz/run.sh --target and the corpus folders call them.</summary>
internal static class Targets
{
    public static readonly string[] Names = ["scanner", "relay"];

    public static Action<byte[]>? Find(string name) => name switch
    {
        "scanner" => static data => ScannerTarget.Run(data),
        "relay" => static data => RelayTarget.Run(data),
        _ => null,
    };
}
