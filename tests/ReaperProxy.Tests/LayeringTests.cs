using System.Text.RegularExpressions;

namespace ReaperProxy.Tests;

/// <summary>
/// The lower layers (Framing, Configuration, Metrics) are used by the relay, the YARP hook, admission,
/// the admin listener and the host; they must never name any of those back, or the folders stop being
/// capabilities and become one tangle. Read from the source, so a cref or a qualified name counts too.
/// </summary>
public partial class LayeringTests
{
    public static TheoryData<string> LowerLayers => ["Framing", "Configuration", "Metrics"];

    // "using ReaperProxy.Relay;", "ReaperProxy.Admission.ConnectionLimiter", and the partly qualified
    // "Admission.ConnectionLimiter" a file under namespace ReaperProxy.* can write without a using.
    [GeneratedRegex(@"\bReaperProxy\.(?:Relay|Proxying|Admission|Admin|Hosting)\b|\b(?:Relay|Proxying|Admission|Admin|Hosting)\.[A-Z]\w*")]
    private static partial Regex HigherLayerReference();

    [Theory]
    [MemberData(nameof(LowerLayers))]
    public void A_lower_layer_names_no_type_of_a_higher_one(string layer)
    {
        var offences = Offences(layer, HigherLayerReference());
        Assert.True(offences.Count == 0, $"src/ReaperProxy/{layer} names higher layers:\n" + string.Join('\n', offences));
    }

    // The relay itself is below the YARP hook, admission, the admin listener and the host.
    [GeneratedRegex(@"\bReaperProxy\.(?:Proxying|Admission|Admin|Hosting)\b|\b(?:Proxying|Admission|Admin|Hosting)\.[A-Z]\w*")]
    private static partial Regex AboveTheRelay();

    [Fact]
    public void The_relay_names_nothing_that_uses_it()
    {
        var offences = Offences("Relay", AboveTheRelay());
        Assert.True(offences.Count == 0, "src/ReaperProxy/Relay names the layers above it:\n" + string.Join('\n', offences));
    }

    [Fact]
    public void The_check_sees_a_qualified_name_and_a_using()
    {
        Assert.Matches(HigherLayerReference(), "using ReaperProxy.Relay;");
        Assert.Matches(HigherLayerReference(), "MaxConnections ?? Admission.ConnectionLimiter.Automatic;");
        Assert.DoesNotMatch(HigherLayerReference(), "public string AdminUrls { get; }");
        Assert.DoesNotMatch(HigherLayerReference(), "// the relay. It");
    }

    // Every line of src/ReaperProxy/{folder}/*.cs the pattern matches, as "file:line: match".
    private static List<string> Offences(string folder, Regex pattern)
    {
        var files = Directory.GetFiles(Path.Combine(RepositoryRoot(), "src", "ReaperProxy", folder), "*.cs");
        Assert.NotEmpty(files);
        return (
            from file in files
            from line in File.ReadLines(file).Select((text, index) => (text, number: index + 1))
            from Match match in pattern.Matches(line.text)
            select $"{Path.GetFileName(file)}:{line.number}: {match.Value}").ToList();
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ReaperProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no ReaperProxy.sln above {AppContext.BaseDirectory}");
    }
}
