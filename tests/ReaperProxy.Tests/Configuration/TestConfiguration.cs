using System.Text;
using Microsoft.Extensions.Configuration;

namespace ReaperProxy.Tests.Configuration;

/// <summary>Builds an <see cref="IConfiguration"/> the way a configuration file would produce it.</summary>
internal static class TestConfiguration
{
    public static IConfiguration FromJson(string json) =>
        new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();

    /// <summary>The repository root (where ReaperProxy.sln is), for tests of the shipped files.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ReaperProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"ReaperProxy.sln not found above {AppContext.BaseDirectory}");
    }
}
