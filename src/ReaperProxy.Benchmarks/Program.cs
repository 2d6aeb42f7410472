using BenchmarkDotNet.Running;

namespace ReaperProxy.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project src/ReaperProxy.Benchmarks -- --filter '*'</c>; add <c>--job short</c>
/// for a quick run. Every BenchmarkDotNet switch works (<c>--list flat</c>, <c>--memory</c>, ...).
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
