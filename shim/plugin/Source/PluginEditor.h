// The plugin window: prompt, Generate, the take list, the generation settings and a status
// line. It only reads and writes the controller's state and the parameters; its Timer runs on
// the message thread, which every DAW that shows a window has (the plugin's work never depends
// on it: see SidemanController).
#pragma once

#include <juce_audio_processors/juce_audio_processors.h>
#include <juce_gui_basics/juce_gui_basics.h>

#include <memory>
#include <vector>

#include "PluginProcessor.h"

namespace sideman::plugin {

class SidemanEditor final : public juce::AudioProcessorEditor, private juce::ListBoxModel, private juce::Timer {
public:
    explicit SidemanEditor(SidemanAudioProcessor& owner);
    ~SidemanEditor() override;

    void paint(juce::Graphics& g) override;
    void resized() override;

private:
    struct LabelledSlider {
        juce::Label label;
        juce::Slider slider { juce::Slider::LinearHorizontal, juce::Slider::TextBoxRight };
        std::unique_ptr<juce::AudioProcessorValueTreeState::SliderAttachment> attachment;
    };

    // ListBoxModel
    int getNumRows() override;
    void paintListBoxItem(int row, juce::Graphics& g, int width, int height, bool selected) override;
    void selectedRowsChanged(int lastRowSelected) override;

    void timerCallback() override;
    void addSlider(LabelledSlider& s, const char* parameterId, const juce::String& name);

    SidemanAudioProcessor& processor_;
    juce::Label promptLabel_ { {}, "Prompt" };
    juce::TextEditor prompt_;
    juce::TextButton generate_ { "Generate" };
    juce::ListBox takes_ { "Takes", this };
    juce::Label noTakes_;
    juce::Label status_;
    LabelledSlider steps_, guidanceContext_, guidanceClap_, seed_, bars_;

    std::vector<TakeRecord> shownTakes_;
    juce::String shownSelection_;
    bool updatingList_ = false;

    JUCE_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(SidemanEditor)
};

}  // namespace sideman::plugin
